"""ResNet baselines (method §3): torchvision's ResNet, unchanged, plus a uniform C2..C5 feature interface.

The VT-ResNets, which keep this trunk and replace its last stage, are in :mod:`vt.models.vt_resnet`.

Every classifier speaks timm's feature vocabulary: ``forward_features(x)`` is the final, unpooled
representation (here the C5 map), ``forward_head(features, pre_logits=False)`` pools and classifies
it, and ``feature_info`` lists C2..C5 as timm's dicts (``num_chs``, ``reduction``, ``module``).
The same levels as :class:`~vt.models.features.FeatureInfo` are ``level_info``, and
``forward_levels(x)`` returns their maps by name (what the segmenters' necks read).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv

from vt.models.features import FeatureInfo, check_input
from vt.models.registry import register_model
from vt.models.trunk import pop_trunk_options, setup_trunk

Block = type[tv.BasicBlock] | type[tv.Bottleneck]

ARCH: dict[int, tuple[Block, list[int]]] = {
    18: (tv.BasicBlock, [2, 2, 2, 2]),
    34: (tv.BasicBlock, [3, 4, 6, 3]),
    50: (tv.Bottleneck, [3, 4, 6, 3]),
    101: (tv.Bottleneck, [3, 4, 23, 3]),
}


LEVELS = ("c2", "c3", "c4", "c5")


def trunk_features(depth: int, c5_channels: int, c5_stride: int) -> list[FeatureInfo]:
    """C2..C5 of a ResNet trunk of ``depth``; C5 (the last stage) as the caller builds it."""
    e = ARCH[depth][0].expansion
    return [
        FeatureInfo("c2", 64 * e, 4),
        FeatureInfo("c3", 128 * e, 8),
        FeatureInfo("c4", 256 * e, 16),
        FeatureInfo("c5", c5_channels, c5_stride),
    ]


def timm_feature_info(levels: list[FeatureInfo]) -> list[dict[str, Any]]:
    """``levels`` (C2..C5) as timm's ``feature_info``: ``num_chs``, ``reduction`` and the stage writing each."""
    return [dict(num_chs=f.channels, reduction=f.stride, module=f"layer{i + 1}") for i, f in enumerate(levels)]


def check_level(last: str) -> None:
    """A one-line ``ValueError`` unless ``last`` names one of C2..C5."""
    if last not in LEVELS:
        raise ValueError(f"unknown feature level {last!r}; levels: {', '.join(LEVELS)}")


class ResNet(tv.ResNet):
    """torchvision's ResNet with C2..C5 (``level_info``, ``forward_levels``) and timm's feature methods."""

    min_input_size = 32  # C5 is H/32

    def __init__(self, depth: int, /, num_classes: int = 1000, dropout: float = 0.0) -> None:
        block, layers = ARCH[depth]
        super().__init__(block, layers, num_classes=num_classes)
        self.name = f"resnet{depth}"
        self.num_classes = num_classes
        self.level_info = trunk_features(depth, 512 * block.expansion, 32)
        self.feature_info = timm_feature_info(self.level_info)
        if dropout > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), self.fc)

    def forward_levels(self, x: Tensor, last: str = "c5") -> dict[str, Tensor]:
        """``x: (B, 3, H, W)`` -> ``{"c2": (B, C2, H/4, W/4), ..., "c5": (B, C5, H/32, W/32)}``.

        Stops after ``last``: the levels above it are neither computed nor returned.
        """
        check_level(last)
        check_input(x, self.min_input_size, self.name, self.conv1.weight.dtype)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        levels: dict[str, Tensor] = {}
        for name, stage in zip(LEVELS, (self.layer1, self.layer2, self.layer3, self.layer4)):
            x = levels[name] = stage(x)
            if name == last:
                break
        return levels

    def forward_features(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> the unpooled C5 map ``(B, C5, H/32, W/32)`` (timm's meaning)."""
        return self.forward_levels(x)["c5"]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """C5 ``(B, C5, h, w)`` -> logits ``(B, num_classes)``, or the pooled ``(B, C5)`` if ``pre_logits``."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))


def _resnet(depth: int, **kwargs: Any) -> ResNet:
    """``resnet{depth}``: a :class:`ResNet`, its trunk set up by the trunk options in ``kwargs``."""
    trunk = pop_trunk_options(kwargs)
    return setup_trunk(ResNet(depth, **kwargs), f"resnet{depth}", **trunk)


# Builders: `python experiments/flops.py` prints how close each comes to the paper's FLOPs and params.
# ``trunk_weights`` fills the stem and stages 1-3 only (the part a VT-ResNet shares), so a ResNet
# trained from the same trunk is the baseline of a VT stage fine-tuned on it.


@register_model(base=(ResNet, setup_trunk))
def resnet18(**kwargs: Any) -> ResNet:
    """torchvision ResNet-18."""
    return _resnet(18, **kwargs)


@register_model(base=(ResNet, setup_trunk))
def resnet34(**kwargs: Any) -> ResNet:
    """torchvision ResNet-34."""
    return _resnet(34, **kwargs)


@register_model(base=(ResNet, setup_trunk))
def resnet50(**kwargs: Any) -> ResNet:
    """torchvision ResNet-50."""
    return _resnet(50, **kwargs)


@register_model(base=(ResNet, setup_trunk))
def resnet101(**kwargs: Any) -> ResNet:
    """torchvision ResNet-101."""
    return _resnet(101, **kwargs)


# The VT-ResNets lived here; their old import path keeps working.
_MOVED = ("PAPER_STAGES", "VT_RESNET34_TABLE8", "VTOptions", "VTResNet", "VTStage", "VTStageConfig",
          "VTStageOutput", "vt_resnet18", "vt_resnet34", "vt_resnet50", "vt_resnet101")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from vt.models import vt_resnet

        return getattr(vt_resnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
