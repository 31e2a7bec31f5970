"""The paper's two analyses of what visual tokens attend to (method §5.3).

* **Entropy** of each token's spatial attention ``A[:, l]`` (a distribution over the HW pixels),
  against that of uniform attention, ``ln(HW)``. The paper reports 0.941 vs 12.318 nats on LIP at
  473×473 (12.318 = ln 473²): tokens attend to few pixels.
* **Foreground ratio**: mean attention a foreground pixel receives over that of a background
  pixel, minus one. The paper reports +28.3 % on LIP: tokens look at the person more than at the
  background.

Plus the paper's token-mixed map ``Â = Σ_l' W[l, l'] A[:, l']`` (W: the transformer's
token-to-token attention) used in its visualisations.

And whether the tokens are distinct at all (:func:`token_diversity`): L visual tokens are only L
concepts if their attention maps differ and their vectors are not collinear (method §8).
All functions take batched tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def mean_pairwise_cosine(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean cosine similarity over the ``N(N-1)/2`` pairs of rows, per batch element.

    ``x: (B, N, D)`` -> ``(B,)``. 1 when every row points the same way (collinear rows).
    """
    n = x.shape[1]
    if n < 2:
        raise ValueError(f"pairwise cosine needs at least two rows, got {n}")
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
    gram = unit @ unit.transpose(1, 2)
    return (gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))


def distinct_argmax_pixels(attn: Tensor) -> Tensor:
    """How many different pixels the tokens' attention peaks on, per image.

    ``attn: (B, HW, L)`` -> ``(B,)`` float counts in ``1..min(L, HW)``; ``L`` when every token
    looks at its own spot, 1 when all look at the same pixel.
    """
    peaks = attn.argmax(dim=1)  # (B, L)
    return torch.tensor([float(p.unique().numel()) for p in peaks])


def effective_rank(tokens: Tensor, eps: float = 1e-12) -> Tensor:
    """Effective rank (Roy & Vetterli 2007) of each image's token matrix.

    ``exp(H(p))`` with ``p`` the singular values of ``tokens[b]`` normalised to sum 1: between 1
    (every token a multiple of one vector) and ``min(L, C)`` (all directions equally used).
    ``tokens: (B, L, C)`` -> ``(B,)``.
    """
    s = torch.linalg.svdvals(tokens.float())
    p = s / s.sum(dim=-1, keepdim=True).clamp_min(eps)
    return torch.exp(-(p * (p + eps).log()).sum(dim=-1))


@dataclass(frozen=True)
class TokenDiversity:
    """How distinct one VT module's tokens are (means over the images of a batch).

    attention_cosine: mean pairwise cosine of the tokenizer's spatial maps ``A[:, l]`` (``None``
        for a tokenizer without maps, e.g. pooling).
    distinct_argmax: distinct argmax pixels of those maps (of ``num_maps``).
    token_cosine: mean pairwise cosine of the module's output tokens.
    effective_rank: of the output tokens (1 = collinear, at most ``num_tokens``).
    num_maps: tokens the tokenizer computed (fewer than ``num_tokens`` where it carries some over).
    num_pixels: pixels of the map the tokenizer read.
    """

    attention_cosine: float | None
    distinct_argmax: float | None
    token_cosine: float
    effective_rank: float
    num_tokens: int
    num_maps: int | None
    num_pixels: int | None


def token_diversity(tokens: Tensor, attn: Tensor | None = None) -> TokenDiversity:
    """:class:`TokenDiversity` of one module from its output ``tokens: (B, L, C_T)`` and tokenizer
    attention ``attn: (B, HW, L')`` (softmax over HW)."""
    tokens = tokens.detach().float()
    maps = None if attn is None else attn.detach().float()
    return TokenDiversity(
        attention_cosine=None if maps is None else mean_pairwise_cosine(maps.transpose(1, 2)).mean().item(),
        distinct_argmax=None if maps is None else distinct_argmax_pixels(maps).mean().item(),
        token_cosine=mean_pairwise_cosine(tokens).mean().item(),
        effective_rank=effective_rank(tokens).mean().item(),
        num_tokens=tokens.shape[1],
        num_maps=None if maps is None else maps.shape[2],
        num_pixels=None if maps is None else maps.shape[1],
    )


@torch.no_grad()
def module_token_diversity(model: nn.Module, images: Tensor) -> list[TokenDiversity]:
    """:class:`TokenDiversity` of every VT module of a VT-ResNet (anything with ``forward_modules``)
    on ``images: (B, 3, H, W)``, first module first. The model is run as it is (train or eval)."""
    outputs = model.forward_modules(images, return_attention=True)
    return [token_diversity(out.tokens, (out.attention or {}).get("tokenizer")) for out in outputs]
