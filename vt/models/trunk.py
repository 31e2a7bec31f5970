"""The trunk a VT-ResNet shares with its ResNet (stem and stages 1-3): pretrained weights, freezing.

A VT-ResNet keeps torchvision's stem and stages 1-3 and replaces the last stage (method §3). Both
classifiers name those modules as torchvision does (``conv1``, ``bn1``, ``layer1``..``layer3``), so
a ResNet's state dict (torchvision's, timm's, or a ``vt`` checkpoint) fills them key for key and a
VT stage can be trained on an ImageNet trunk (``experiments/configs/finetune.yaml``). Every
classifier builder takes the options of :func:`setup_trunk`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from vt.models.weights import LoadReport, load_weights

TRUNK = ("conv1", "bn1", "layer1", "layer2", "layer3")
TRUNK_OPTIONS = ("trunk_weights", "freeze_trunk")  # the builder arguments setup_trunk takes


def trunk_of(model: nn.Module) -> nn.ModuleDict:
    """``model``'s stem and stages 1-3 under their torchvision names (a view: the modules are shared)."""
    missing = [name for name in TRUNK if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        raise ValueError(f"{type(model).__name__} has no ResNet trunk (no {', '.join(missing)}); "
                         f"trunk options apply to the resnet* and vt_resnet* classifiers")
    return nn.ModuleDict({name: getattr(model, name) for name in TRUNK})


def trunk_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model``'s trunk (what ``--model.trunk_lr_mult`` scales)."""
    return list(trunk_of(model).parameters())


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by a ``FrozenBatchNorm2d`` with its values.

    Returns the module (a new object if ``module`` itself is a ``BatchNorm2d``).
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        setattr(module, name, freeze_batchnorm(child))
    return module


def load_trunk(model: nn.Module, weights: str | Path, arch: str) -> LoadReport:
    """Fill ``model``'s trunk from ``weights``; every other module keeps its initialisation.

    ``weights``: a torchvision or timm ResNet state dict file, a ``vt`` checkpoint, or a library
    source (``"torchvision"``, ``"timm"``, see :func:`vt.models.weights.library_state_dict`) for
    ``arch`` (``"resnet50"``). The report lists the checkpoint's other entries (``layer4.*``,
    ``fc.*``) as unexpected. A trunk tensor left unloaded (a checkpoint of another depth or
    layout) is a one-line ``ValueError``; BatchNorm's batch counters may be absent.
    """
    report = load_weights(trunk_of(model), weights, arch=arch)
    unloaded = [k for k in report.missing if not k.endswith("num_batches_tracked")]
    foreign = [k for k in report.unexpected if k.split(".", 1)[0] in TRUNK]  # e.g. layer3.6.* of a ResNet-101
    if unloaded or foreign:
        example = (report.mismatched or unloaded or foreign)[0]
        counts = f"{len(unloaded)} of {len(report.loaded) + len(report.missing)} trunk tensors not loaded"
        counts += f", {len(foreign)} checkpoint tensors not in it" if foreign else ""
        raise ValueError(f"trunk_weights {str(weights)!r} do not fit the {arch} trunk: {counts} (e.g. {example}); "
                         f"give the weights of a {arch} (torchvision or timm layout)")
    return report


def freeze(model: nn.Module) -> None:
    """Fix ``model``'s trunk: no gradients, BatchNorm statistics and affine parameters frozen.

    Frozen BatchNorms (``FrozenBatchNorm2d``) also keep Lightning's ``sync_batchnorm`` from
    converting them, so the trunk computes the same in train and eval mode.
    """
    for name in TRUNK:
        setattr(model, name, freeze_batchnorm(getattr(model, name)))
    trunk_of(model).requires_grad_(False)


def setup_trunk(
    model: nn.Module, arch: str, /, trunk_weights: str | None = None, freeze_trunk: bool = False
) -> Any:
    """Initialise and optionally freeze ``model``'s trunk; returns ``model``.

    Args:
        trunk_weights: where the stem and stages 1-3 come from (see :func:`load_trunk`); the
            report is kept as ``model.trunk_weights_report`` (``None`` without weights).
        freeze_trunk: freeze the trunk (see :func:`freeze`), e.g. to train a VT stage alone on
            an ImageNet trunk.
    """
    model.trunk_weights_report = load_trunk(model, trunk_weights, arch) if trunk_weights else None
    if freeze_trunk:
        freeze(model)
    return model


def pop_trunk_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TRUNK_OPTIONS` in a builder's ``kwargs``, removed from them."""
    return {name: kwargs.pop(name) for name in TRUNK_OPTIONS if name in kwargs}
