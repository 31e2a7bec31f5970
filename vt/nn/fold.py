"""Folding BatchNorms for inference: a speed step, separate from the equations (method §2.5).

In evaluation a BatchNorm is a fixed per-channel affine map ``y * s + c``, and a projector
(Eq. 7) has two of them: on its added branch, and on its shortcut when it widens the map. Since
every pixel's attention over the tokens sums to 1, ``BN(A V) = A (V s + c)``: the branch's
BatchNorm can act on the L token values instead of the HW pixels; the shortcut's folds into its
1×1 convolution. Same result up to rounding, one memory-bound pass over the output map fewer.
`fold_batchnorm` rewrites a model that way, once, after its weights are loaded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vt.nn.projector import Projector


class TokenAffine(nn.Module):
    """A folded BatchNorm on the token values: ``v: (B, L, C)`` -> ``v * scale + shift`` per channel."""

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, v: Tensor) -> Tensor:
        """``v: (B, L, C)`` -> same shape, in ``v``'s dtype (the statistics may be kept in fp32)."""
        return torch.addcmul(self.shift.to(v.dtype), v, self.scale.to(v.dtype))


def _affine(norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    """``(scale, shift)`` with ``norm(y) == y * scale + shift`` per channel, or ``None``.

    Only a BatchNorm with running statistics is such a fixed affine map (in evaluation mode).
    """
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.running_mean is None:
        return None
    if norm.training:
        raise ValueError("fold_batchnorm folds the running statistics of BatchNorms in evaluation mode; "
                         "call model.eval() first")
    assert norm.running_var is not None
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale.detach(), shift.detach()


def _folded_conv(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> nn.Conv2d:
    """``conv`` followed by ``y * scale + shift``, as one convolution in ``conv``'s dtype."""
    if conv.bias is not None:
        shift = shift + conv.bias.detach() * scale
    folded = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_(shift)
    return folded.requires_grad_(conv.weight.requires_grad)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold the BatchNorms of every :class:`~vt.nn.Projector` in ``model`` (in place; returns it).

    The branch's BatchNorm becomes a :class:`TokenAffine` after the value map ``W_V`` (on the L
    tokens), the shortcut's ``conv + BN`` one convolution with a bias. For inference only: call it
    after loading the weights, in evaluation mode (a BatchNorm still training raises
    ``ValueError``); the folded projectors have no BatchNorm left to train, and their state-dict
    keys change. Other BatchNorms (the ResNet trunk's) and BatchNorms without running statistics
    are left alone; folding twice changes nothing.
    """
    for projector in (m for m in model.modules() if isinstance(m, Projector)):
        branch = _affine(projector.norm)
        if branch is not None:
            affine = TokenAffine(*branch)
            value = projector.value
            projector.value = affine if isinstance(value, nn.Identity) else nn.Sequential(value, affine)
            projector.norm = nn.Identity()
        shortcut = projector.shortcut
        if isinstance(shortcut, nn.Sequential) and len(shortcut) == 2 and isinstance(shortcut[0], nn.Conv2d):
            bn = _affine(shortcut[1])
            if bn is not None:
                projector.shortcut = _folded_conv(shortcut[0], *bn)
    return model
