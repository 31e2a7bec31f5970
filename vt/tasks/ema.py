"""Exponential moving average of a model's weights (the advanced recipe, spec §6)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class EMA(nn.Module):
    """A frozen copy of ``model`` whose weights track ``model``'s by an exponential moving average.

    ``update`` after every optimizer step applies ``w_ema = d * w_ema + (1 - d) * w`` to every
    floating-point parameter and buffer (BatchNorm statistics included) and copies the others
    (``num_batches_tracked``). The decay is warmed up as in TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``: ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
    updates, so the average does not stay anchored to the random initialisation, which matters
    for runs much shorter than the paper's 400 epochs (0.99985 averages over ~6700 steps).

    The copy is a submodule, so it is checkpointed (under ``ema.``), moved between devices and
    put in eval mode with its owner; its parameters do not require gradients, so optimizers and
    DDP ignore them.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights."""
        n = float(self.num_updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        current = model.state_dict()
        for name, averaged in self.module.state_dict().items():
            value: Tensor = current[name].detach()
            if averaged.is_floating_point():
                averaged.lerp_(value, 1 - decay)
            else:
                averaged.copy_(value)
        self.num_updates += 1

    def forward(self, x: Tensor) -> Tensor:
        """The averaged model's forward, ``x`` as the model takes it."""
        return self.module(x)
