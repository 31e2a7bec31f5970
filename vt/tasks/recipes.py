"""Training recipes (method §6): optimizer, learning-rate schedule and regularisation, by name.

A :class:`Recipe` states the paper's numbers in the paper's units: the learning rate at the paper's
global batch, and a schedule over the paper's length (epochs, or iterations for Detectron2's
segmentation schedule). Two rules make one recipe usable at any scale:

* **linear scaling** (Goyal et al. 2017): the peak learning rate is ``lr * global_batch / batch_size``,
  so ``--trainer.devices 8`` or ``--data.batch_size 64`` need no new learning rate;
* **stretching**: the schedule's shape is kept and stretched to the run's length
  (``--trainer.max_epochs`` or ``--trainer.max_steps``), so a 6-epoch run of the 90-epoch standard
  recipe divides the rate by 10 after epochs 2 and 4. At the paper's length it is the paper's schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from vt.models.trunk import trunk_parameters
from vt.tasks.optim import RMSpropTF


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Attributes:
        optimizer: ``"sgd"`` (momentum), ``"rmsprop"`` (TensorFlow's, `vt.tasks.optim.RMSpropTF`:
            decay 0.9, epsilon 1e-3) or ``"adamw"``.
        lr: peak learning rate at a global batch of ``batch_size``.
        batch_size: the global batch ``lr`` belongs to.
        weight_decay: L2 penalty (on norms and biases only if ``norm_bias_decay``).
        length: the schedule's length in ``unit``; the run's length stretches it.
        unit: ``"epochs"`` or ``"iterations"``, the unit of ``length``, ``warmup`` and ``milestones``.
        momentum: SGD or RMSProp momentum.
        warmup: linear warm-up from ``warmup_factor * lr`` to ``lr`` over this many units.
        warmup_factor: the warm-up's starting fraction of ``lr``.
        milestones: the rate is multiplied by ``gamma`` at each of these points (step schedule).
        gamma: the factor of each milestone.
        decay: after warm-up, the rate is multiplied by ``decay`` per whole unit (exponential schedule).
        cosine: after warm-up, the rate also follows a half cosine down to zero at the end.
        label_smoothing: cross-entropy label smoothing.
        ema_decay: decay of the exponential moving average of the weights; 0 disables it.
        drop_path: stochastic depth (1 - survival probability) of the VT modules' residual branches.
        dropout: dropout before the classifier.
        norm_bias_decay: apply weight decay to normalisation weights and biases too.
        augmentation: the datamodule's training augmentation, ``"standard"`` or ``"advanced"``.
    """

    optimizer: Literal["sgd", "rmsprop", "adamw"]
    lr: float
    batch_size: int
    weight_decay: float
    length: float
    unit: Literal["epochs", "iterations"] = "epochs"
    momentum: float = 0.9
    warmup: float = 0.0
    warmup_factor: float = 1.0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    decay: float = 1.0
    cosine: bool = False
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    drop_path: float = 0.0
    dropout: float = 0.0
    norm_bias_decay: bool = False
    augmentation: Literal["standard", "advanced"] = "standard"

    def lr_factor(self, progress: float) -> float:
        """The learning rate as a fraction of the peak, ``progress`` in [0, 1] of the run."""
        t = progress * self.length  # in the recipe's units
        if t < self.warmup:
            return self.warmup_factor + (1 - self.warmup_factor) * t / self.warmup
        steps = sum(t >= m for m in self.milestones)
        factor = self.gamma**steps * self.decay ** math.floor(t - self.warmup)
        if self.cosine:
            factor *= 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (self.length - self.warmup)))
        return factor

    def peak_lr(self, global_batch: int) -> float:
        """``lr`` scaled linearly from ``batch_size`` to ``global_batch``."""
        return self.lr * global_batch / self.batch_size


# Detectron2's semantic FPN "1x" schedule: 90k iterations, linear warm-up over the first 1000 from
# 1/1000 of the rate, divided by 10 at 60k and 80k.
_FPN_1X = dict(
    unit="iterations", length=90_000, warmup=1000, warmup_factor=0.001, milestones=(60_000, 80_000)
)

CLASSIFICATION_RECIPES: dict[str, Recipe] = {
    # Paper Table 2: SGD, momentum 0.9, lr 0.1 (batch 256) / 10 every 30 of 90 epochs, wd 4e-5.
    "standard": Recipe(
        optimizer="sgd", lr=0.1, batch_size=256, weight_decay=4e-5, length=90, milestones=(30, 60)
    ),
    # Paper Table 8: 400 epochs of RMSProp, warm-up 0.01 -> 0.16 (batch 2048) over 5 epochs, then
    # x0.9875 per epoch; label smoothing, EMA 0.99985, survival probability 0.9, dropout 0.2. The
    # paper gives no weight decay and smoothing value: 1e-5 and 0.1 are those of the FBNet/
    # EfficientNet RMSProp recipes this one descends from.
    "advanced": Recipe(
        optimizer="rmsprop", lr=0.16, batch_size=2048, weight_decay=1e-5, length=400, warmup=5,
        warmup_factor=0.01 / 0.16, decay=0.9875, label_smoothing=0.1, ema_decay=0.99985,
        drop_path=0.1, dropout=0.2, augmentation="advanced",
    ),
    # Not the paper's: the quick demo on synthetic shapes (the default of experiments/cls.py).
    # From scratch, on a few thousand images and a few hundred steps, SGD at the standard
    # recipe's rate barely leaves chance; AdamW with a warm-up (which the transformer needs) and
    # a cosine decay learns the shapes (benchmarks/synthetic_difficulty.py trains the same way).
    # Peak 5e-4, not the usual 1e-3: in the 4-epoch default run full-width VT-ResNet-34 reaches
    # 26.0 % val top-1 at 1e-3 and 49.4 % at 5e-4; ResNet-34 72.5 % and 52.7 % (README).
    "synthetic": Recipe(
        optimizer="adamw", lr=5e-4, batch_size=32, weight_decay=0.05, length=4, warmup=0.4,
        warmup_factor=0.01, cosine=True,
    ),
}

SEGMENTATION_RECIPES: dict[str, Recipe] = {
    # Method §6, COCO-Stuff: base lr 0.04 at batch 32; weight decay is Detectron2's default, 1e-4.
    "fpn_1x": Recipe(
        optimizer="sgd", lr=0.04, batch_size=32, weight_decay=1e-4, **_FPN_1X  # type: ignore[arg-type]
    ),
    # Method §6, LIP: SGD, lr 0.01 at batch 96, weight decay 5e-4.
    "fpn_lip": Recipe(
        optimizer="sgd", lr=0.01, batch_size=96, weight_decay=5e-4, **_FPN_1X  # type: ignore[arg-type]
    ),
}


def resolve_recipe(recipes: dict[str, Recipe], name: str, **overrides: Any) -> Recipe:
    """The recipe ``name`` with the non-``None`` ``overrides`` replacing its fields.

    Raises a one-line ``ValueError`` for an unknown name.
    """
    if name not in recipes:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(recipes)}")
    return replace(recipes[name], **{k: v for k, v in overrides.items() if v is not None})


def parameter_groups(
    model: nn.Module, weight_decay: float, norm_bias_decay: bool, trunk_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """``model``'s trainable parameters, split so that norms and biases get no weight decay.

    Every parameter of at most one dimension is a normalisation weight or a bias (convolution and
    linear weights have two or more), so the split needs no knowledge of the model's modules.
    With ``trunk_lr_mult != 1`` the trunk's parameters (:func:`vt.models.trunk.trunk_parameters`)
    form groups of their own, after the others, whose ``lr_scale`` :func:`build_optimizer` applies.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if norm_bias_decay:
        groups = [{"params": params, "weight_decay": weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    if trunk_lr_mult == 1.0:
        return groups
    trunk = {id(p) for p in trunk_parameters(model)}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in trunk]} for g in groups]
    scaled = [{**g, "params": [p for p in g["params"] if id(p) in trunk], "lr_scale": trunk_lr_mult} for g in groups]
    return rest + scaled


def build_optimizer(recipe: Recipe, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``groups`` at learning rate ``lr`` (times a group's ``lr_scale``)."""
    groups = [{**g, "lr": lr * g["lr_scale"]} if "lr_scale" in g else g for g in groups]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    # The FBNet/EfficientNet recipes' RMSProp: decay 0.9, epsilon 1e-3 (inside the square root).
    return RMSpropTF(groups, lr=lr, rho=0.9, eps=1e-3, momentum=recipe.momentum)
