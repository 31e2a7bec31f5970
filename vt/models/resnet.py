"""ResNet baselines (method §3): torchvision's ResNet, unchanged, plus a uniform C2..C5 feature interface.

The VT-ResNets, which keep this trunk and replace its last stage, are in :mod:`vt.models.vt_resnet`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv

from vt.models.features import FeatureInfo, check_input
from vt.models.registry import register_model

Block = type[tv.BasicBlock] | type[tv.Bottleneck]

ARCH: dict[int, tuple[Block, list[int]]] = {
    18: (tv.BasicBlock, [2, 2, 2, 2]),
    34: (tv.BasicBlock, [3, 4, 6, 3]),
    50: (tv.Bottleneck, [3, 4, 6, 3]),
    101: (tv.Bottleneck, [3, 4, 23, 3]),
}


def trunk_features(depth: int, c5_channels: int, c5_stride: int) -> list[FeatureInfo]:
    """C2..C5 of a ResNet trunk of ``depth``; C5 (the last stage) as the caller builds it."""
    e = ARCH[depth][0].expansion
    return [
        FeatureInfo("c2", 64 * e, 4),
        FeatureInfo("c3", 128 * e, 8),
        FeatureInfo("c4", 256 * e, 16),
        FeatureInfo("c5", c5_channels, c5_stride),
    ]


class ResNet(tv.ResNet):
    """torchvision's ResNet with ``feature_info`` and ``forward_features`` (C2..C5)."""

    min_input_size = 32  # C5 is H/32

    def __init__(self, depth: int, /, num_classes: int = 1000, dropout: float = 0.0) -> None:
        block, layers = ARCH[depth]
        super().__init__(block, layers, num_classes=num_classes)
        self.name = f"resnet{depth}"
        self.feature_info = trunk_features(depth, 512 * block.expansion, 32)
        if dropout > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), self.fc)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """``x: (B, 3, H, W)`` -> ``{"c2": (B, C2, H/4, W/4), ..., "c5": (B, C5, H/32, W/32)}``."""
        check_input(x, self.min_input_size, self.name)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": self.layer4(c4)}

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)["c5"]), 1))


# Builders: `python experiments/flops.py` prints how close each comes to the paper's FLOPs and params.


@register_model(base=ResNet)
def resnet18(**kwargs: Any) -> ResNet:
    """torchvision ResNet-18."""
    return ResNet(18, **kwargs)


@register_model(base=ResNet)
def resnet34(**kwargs: Any) -> ResNet:
    """torchvision ResNet-34."""
    return ResNet(34, **kwargs)


@register_model(base=ResNet)
def resnet50(**kwargs: Any) -> ResNet:
    """torchvision ResNet-50."""
    return ResNet(50, **kwargs)


@register_model(base=ResNet)
def resnet101(**kwargs: Any) -> ResNet:
    """torchvision ResNet-101."""
    return ResNet(101, **kwargs)


# The VT-ResNets lived here; their old import path keeps working.
_MOVED = ("PAPER_STAGES", "VT_RESNET34_TABLE8", "VTOptions", "VTResNet", "VTStage", "VTStageConfig",
          "VTStageOutput", "vt_resnet18", "vt_resnet34", "vt_resnet50", "vt_resnet101")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from vt.models import vt_resnet

        return getattr(vt_resnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
