"""ResNet backbones for dense prediction: MSRA-style strides, pretrained weights, frozen BatchNorm.

The segmenters (method §4) read C2..C5 from :class:`vt.models.resnet.ResNet` (torchvision's ResNet).
Two things differ from the classifier:

* **Stride in the first 1×1 convolution** (``stride_in_1x1``). torchvision puts a downsampling
  block's stride in its 3×3 convolution; the original MSRA ResNet, and Detectron2 (in which the
  paper's segmenters were built), put it in the first 1×1 convolution, so the 3×3 runs on the
  already halved map. At 473×473 that makes ResNet-50 1.1 GFLOPs lighter, the difference between
  +4.0 % and +1.1 % against the paper's segmenter totals (method §5.2). It changes no weight shape,
  so torchvision checkpoints still load; they were trained with the stride in the 3×3, though, and
  Detectron2 uses ``stride_in_1x1=False`` for them: pass that when fine-tuning accuracy matters
  more than matching the paper's FLOPs.
* **Frozen BatchNorm** (``frozen_bn``): statistics and affine parameters fixed to the checkpoint's,
  for small per-GPU batches. For synchronized BatchNorm instead, keep ``frozen_bn=False`` and set
  Lightning's ``--trainer.sync_batchnorm true``: it converts every ``nn.BatchNorm2d`` (frozen ones
  are not ``BatchNorm2d`` and stay frozen).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet as tv

from vt.models.resnet import ResNet
from vt.models.trunk import freeze_batchnorm
from vt.models.weights import LoadReport, load_weights


def move_stride_to_1x1(net: ResNet) -> None:
    """Move each downsampling bottleneck's stride from its 3×3 to its first 1×1 conv (in place).

    Both convolutions read the stride from ``Conv2d.stride`` at call time, so swapping the
    attribute is the whole change; the shortcut's strided 1×1 is already MSRA-style.
    """
    for stage in (net.layer2, net.layer3, net.layer4):
        first = stage[0]
        if not isinstance(first, tv.Bottleneck):
            raise ValueError("stride_in_1x1 needs bottleneck blocks (ResNet-50/101); "
                             "pass stride_in_1x1=False for ResNet-18/34")
        first.conv1.stride, first.conv2.stride = first.conv2.stride, first.conv1.stride


def resnet_backbone(
    depth: int,
    stride_in_1x1: bool = True,
    weights: str | None = None,
    frozen_bn: bool = False,
) -> tuple[ResNet, LoadReport | None]:
    """A :class:`ResNet` for dense tasks: C2..C5 through ``forward_levels``, no classifier.

    Args:
        depth: 18, 34, 50 or 101.
        stride_in_1x1: MSRA/Detectron2-style downsampling (bottleneck depths only).
        weights: local checkpoint (torchvision state dict or one of our classifier checkpoints),
            or ``"torchvision"`` / ``"timm"`` for that library's ResNet weights (its cache, or a
            download); see :func:`vt.models.weights.load_weights`.
        frozen_bn: freeze every BatchNorm after loading.

    Returns:
        The backbone and, if ``weights`` was given, the report of which keys loaded.
    """
    net = ResNet(depth)
    # Dense tasks read C2..C5 only; an identity keeps the module tree torchvision's, so a
    # checkpoint's fc.* keys show up as "unexpected" in the load report rather than loading.
    net.fc = nn.Identity()
    if stride_in_1x1:
        move_stride_to_1x1(net)
    report = load_weights(net, weights, arch=f"resnet{depth}") if weights else None
    if frozen_bn:
        freeze_batchnorm(net)
    return net, report
