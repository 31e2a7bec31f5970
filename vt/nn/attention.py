"""The one attention primitive every VT block uses.

All three attentions of the paper (tokenizer: tokens attend over pixels; transformer: tokens over
tokens; projector: pixels over tokens) are ``softmax(q kᵀ · scale) v`` with the softmax over the key
axis. Keeping them in one function gives one place to choose the kernel: the fused
``F.scaled_dot_product_attention`` when nobody asks for the attention map, explicit matmuls when the
notebooks want to draw it. ``vt.flops`` registers an fvcore handle for the fused op, so both paths are
counted the same (one multiply-add = one FLOP).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(B, N, h·d) -> (B, h, N, d)``."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, h, N, d) -> (B, N, h·d)``."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float | None,
    return_attention: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``softmax(q kᵀ · scale) v``, softmax over the key axis.

    Args:
        q: ``(B, h, Nq, d)`` queries.
        k: ``(B, h, Nk, d)`` keys.
        v: ``(B, h, Nk, dv)`` values.
        scale: logit multiplier; ``None`` means ``1/sqrt(d)``.
        return_attention: also return the attention weights (explicit path).

    Returns:
        ``(out, attn)``: ``out (B, h, Nq, dv)``; ``attn (B, h, Nq, Nk)`` (rows sum to 1) or ``None``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if not return_attention:
        return F.scaled_dot_product_attention(q, k, v, scale=scale), None
    attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1)
    return torch.matmul(attn, v), attn
