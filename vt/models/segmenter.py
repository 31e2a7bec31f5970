"""Semantic segmenters (method §4): a ResNet backbone, an FPN or VT-FPN neck, the semantic head.

    image -> ResNet C2..C5 -> neck (FPN or VT-FPN) -> P2..P5 -> semantic head -> logits

The necks and the head are in :mod:`vt.models.fpn`, the backbone in :mod:`vt.models.backbones`.
The logits are resized bilinearly to the input; the smallest input is the backbone's (32×32, one
C5 pixel).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vt.models.backbones import resnet_backbone
from vt.models.features import check_input
from vt.models.fpn import HEAD_CHANNELS, NECKS, PYRAMID_CHANNELS, PyramidNeck, SemanticFPNHead, VTFPNConfig
from vt.models.registry import config_options, register_model
from vt.models.resnet import ResNet
from vt.models.weights import LoadReport

PYRAMID_LEVELS = ("c2", "c3", "c4", "c5")


class Segmenter(nn.Module):
    """Backbone -> neck -> semantic head: ``x: (B, 3, H, W)`` -> logits ``(B, num_classes, H, W)``.

    Args:
        backbone: a :class:`ResNet` (``forward_levels`` gives C2..C5, ``level_info`` states them).
        neck: an :class:`~vt.models.fpn.FPN` or :class:`~vt.models.fpn.VTFPN` on the backbone's C2..C5.
        head: a :class:`~vt.models.fpn.SemanticFPNHead` on ``neck.feature_info``.
        name: the registered name, used in error messages.
        weights_report: what loading the backbone's checkpoint did, kept for inspection.
    """

    def __init__(
        self,
        backbone: ResNet,
        neck: PyramidNeck,
        head: SemanticFPNHead,
        name: str,
        weights_report: LoadReport | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.name = name
        self.backbone_weights_report = weights_report
        self.min_input_size = backbone.min_input_size
        self.num_classes = head.predictor.out_channels

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` (any ``H, W >= min_input_size``) -> ``(B, num_classes, H, W)``."""
        check_input(x, self.min_input_size, self.name, self.backbone.conv1.weight.dtype)
        return self.head(self.neck(self.backbone.forward_levels(x)), x.shape[-2:])


def _segmenter(
    neck: str,
    depth: int,
    /,
    num_classes: int = 20,
    backbone_weights: str | None = None,
    frozen_bn: bool = False,
    stride_in_1x1: bool = True,
    out_channels: int = PYRAMID_CHANNELS,
    head_channels: int = HEAD_CHANNELS,
    **neck_options: Any,
) -> Segmenter:
    """``{neck}_resnet{depth}``; what every segmenter builder takes.

    Args:
        num_classes: LIP 20, COCO-Stuff 171/182, or 91 stuff classes as in the paper's table.
        backbone_weights: a local torchvision .pth or vt classifier .ckpt (see
            :mod:`vt.models.weights`); it only initialises the backbone.
        frozen_bn: freeze the backbone's BatchNorms.
        stride_in_1x1: MSRA/Detectron2 strides, which the paper's totals need (see
            :mod:`vt.models.backbones`).
        out_channels: pyramid width.
        head_channels: semantic head width.
        neck_options: the neck's options (VT-FPN: the fields of :class:`~vt.models.fpn.VTFPNConfig`).
    """
    backbone, report = resnet_backbone(depth, stride_in_1x1, backbone_weights, frozen_bn)
    levels = [f for f in backbone.level_info if f.name in PYRAMID_LEVELS]
    pyramid = NECKS[neck](levels, out_channels, **neck_options)
    head = SemanticFPNHead(pyramid.feature_info, num_classes, head_channels)
    return Segmenter(backbone, pyramid, head, f"{neck}_resnet{depth}", report)


NECK_OPTIONS = {"fpn": (), "vtfpn": config_options(VTFPNConfig())}


def _registered(neck: str) -> Any:
    """Registers a segmenter builder: `_segmenter`'s arguments, then the neck's options."""
    return register_model(task="segmentation", base=_segmenter, options=NECK_OPTIONS[neck], group="neck")


# Builders. `python experiments/flops.py --task seg` prints how close each comes to the paper's
# neck and total FLOPs (method §5.2).


@_registered("fpn")
def fpn_resnet50(**kwargs: Any) -> Segmenter:
    """Semantic FPN on ResNet-50."""
    return _segmenter("fpn", 50, **kwargs)


@_registered("fpn")
def fpn_resnet101(**kwargs: Any) -> Segmenter:
    """Semantic FPN on ResNet-101."""
    return _segmenter("fpn", 101, **kwargs)


@_registered("vtfpn")
def vtfpn_resnet50(**kwargs: Any) -> Segmenter:
    """VT-FPN on ResNet-50."""
    return _segmenter("vtfpn", 50, **kwargs)


@_registered("vtfpn")
def vtfpn_resnet101(**kwargs: Any) -> Segmenter:
    """VT-FPN on ResNet-101."""
    return _segmenter("vtfpn", 101, **kwargs)
