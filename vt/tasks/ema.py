"""Exponential moving average of a model's weights (the advanced recipe, method §6)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def warmed_up_ema(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """`AveragedModel`'s ``multi_avg_fn`` for ``w_ema = d * w_ema + (1 - d) * w``, ``d`` warmed up.

    The decay is warmed up as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)``:
    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average does not stay
    anchored to the random initialisation, which matters for runs much shorter than the paper's
    400 epochs (0.99985 averages over ~6700 steps). Tensors that are not floating point
    (BatchNorm's ``num_batches_tracked``) are copied, not averaged.
    """

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        n = float(n_averaged) - 1  # updates so far: the initial weights are the first averaged model
        d = min(decay, (1 + n) / (10 + n))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:
            torch._foreach_copy_(averaged, current)

    return update


class EMA(AveragedModel):
    """A frozen copy of ``model`` whose weights and buffers track ``model``'s (`warmed_up_ema`).

    ``update_parameters(model)`` after every optimizer step averages every parameter and buffer
    (BatchNorm statistics included, ``use_buffers=True``). The average starts as the initial
    weights, so ``n_averaged`` counts them: it is one more than the updates done.

    The copy is a submodule, so it is checkpointed (under ``ema.module.``, with ``ema.n_averaged``),
    moved between devices and put in eval mode with its owner; its parameters do not require
    gradients, so optimizers and DDP ignore them.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=warmed_up_ema(decay), use_buffers=True)
        self.decay = decay
        self.module.requires_grad_(False)
        self.update_parameters(model)  # AveragedModel's first update copies: the initial weights
