"""The paper's two analyses of what visual tokens attend to (spec §5.3).

* **Entropy** of each token's spatial attention ``A[:, l]`` (a distribution over the HW pixels),
  against that of uniform attention, ``ln(HW)``. The paper reports 0.941 vs 12.318 nats on LIP at
  473×473 (12.318 = ln 473²): tokens attend to few pixels.
* **Foreground ratio**: mean attention a foreground pixel receives over that of a background
  pixel, minus one. The paper reports +28.3 % on LIP: tokens look at the person more than at the
  background.

Plus the paper's token-mixed map ``Â = Σ_l' W[l, l'] A[:, l']`` (W: the transformer's
token-to-token attention) used in its visualisations. All functions take batched tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def attention_entropy(attn: Tensor, eps: float = 1e-12) -> Tensor:
    """Entropy in nats of each token's spatial attention.

    Args:
        attn: ``(B, HW, L)``, each column a distribution over the HW pixels.

    Returns:
        ``(B, L)`` entropies; ``ln(HW)`` for uniform attention, 0 for a one-hot one.
    """
    return -(attn * (attn + eps).log()).sum(dim=1)


def uniform_entropy(num_pixels: int) -> float:
    """Entropy of uniform attention over ``num_pixels`` pixels: ``ln(num_pixels)``."""
    return math.log(num_pixels)


def upsample_attention(attn: Tensor, map_size: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Spread each token's attention from the ``map_size`` grid to ``size`` pixels.

    Bilinear upsampling, then renormalised so every token's map still sums to 1 over the (more)
    pixels, as when the paper measures entropy at the input resolution.

    ``attn: (B, h·w, L)`` -> ``(B, H·W, L)``.
    """
    b, _, l = attn.shape
    maps = attn.transpose(1, 2).reshape(b, l, *map_size)
    up = F.interpolate(maps, size=size, mode="bilinear", align_corners=False).clamp_min(0)
    up = up.flatten(2)
    return (up / up.sum(dim=-1, keepdim=True)).transpose(1, 2)


def foreground_attention_ratio(attn: Tensor, foreground: Tensor) -> Tensor:
    """How much more attention a foreground pixel gets than a background pixel, minus one.

    Args:
        attn: ``(B, HW, L)`` spatial attention of each token.
        foreground: ``(B, HW)`` bool, True on foreground pixels (at the attention's resolution).

    Returns:
        A scalar: ``mean_fg(a) / mean_bg(a) - 1`` where ``a`` is a pixel's attention summed over
        tokens, pooled over the batch. 0 means no preference; the paper's LIP figure is 0.283.
    """
    per_pixel = attn.sum(dim=-1)  # (B, HW)
    fg = foreground.bool()
    if fg.all() or not fg.any():
        raise ValueError("foreground mask must contain both foreground and background pixels")
    return per_pixel[fg].mean() / per_pixel[~fg].mean() - 1


def token_mixed_attention(attn: Tensor, token_attn: Tensor) -> Tensor:
    """The paper's ``Â[:, l] = Σ_l' W[l, l'] A[:, l']``.

    Args:
        attn: ``(B, HW, L)`` tokenizer attention ``A``.
        token_attn: ``(B, heads, L, L)`` or ``(B, L, L)`` transformer attention ``W`` (heads are
            averaged).

    Returns:
        ``(B, HW, L)``; each column still sums to 1 over the pixels.
    """
    w = token_attn.mean(dim=1) if token_attn.dim() == 4 else token_attn
    return torch.einsum("bpk,blk->bpl", attn, w)
