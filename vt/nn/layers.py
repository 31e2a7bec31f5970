"""Small layers shared by the VT blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def frozen_norm_affine(norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    """``(scale, shift)`` with ``norm(y) == y * scale + shift`` per channel, or ``None``.

    Only a BatchNorm in evaluation mode with running statistics is such a fixed affine map; in
    training it normalises with the batch's statistics, and anything else is not a BatchNorm.
    """
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.training or norm.running_mean is None:
        return None
    assert norm.running_var is not None
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


class ConvBN(nn.Sequential):
    """A bias-free convolution then a BatchNorm; in evaluation, one convolution with the BN folded in.

    Folding saves a pass over the output map (the BN is memory-bound: 5 % of VT-ResNet-18's VT
    stage on a CPU). The parameters and state-dict keys (``0.weight``, ``1.running_mean``, ...)
    are those of ``nn.Sequential(conv, bn)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, C_in, H, W)`` -> ``(B, C_out, H', W')``."""
        conv, bn = self[0], self[1]
        affine = frozen_norm_affine(bn)
        if affine is None:
            return bn(conv(x))
        scale, shift = affine
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        # The statistics may be kept in fp32 under a bf16/fp16 model: fold, then cast back.
        weight = (conv.weight * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype)
        return F.conv2d(x, weight, shift.to(weight.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: drop the whole branch per sample while training.

    The advanced recipe (spec §6) keeps each branch with probability ``1 - p`` (0.9); surviving
    branches are scaled by ``1/(1-p)`` so the expected output matches evaluation.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, ...)`` -> same shape."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
