"""The one attention primitive every VT block uses.

All three attentions of the paper (tokenizer: tokens attend over pixels; transformer: tokens over
tokens; projector: pixels over tokens) are ``softmax(q kᵀ · scale) v`` with the softmax over the key
axis. Keeping them in one function gives one place to choose the kernel:

* on GPUs, the fused ``F.scaled_dot_product_attention`` when nobody asks for the attention map;
* on CPUs, the fused kernel only where PyTorch's CPU flash kernel takes the shapes and it pays:
  a few queries over many keys (the tokenizers) with equal query/key/value widths and unit-stride
  rows, i.e. tokens over a channels-last map; it reads the map once instead of twice. Everywhere
  else (value widths C_out or C_T unlike query widths C_T/2, NCHW maps, pixels over tokens) the
  CPU kernel falls back to a path slower than two explicit matmuls, so those are used, as they
  are whenever the notebooks want the map.

The explicit path is written for the VT shapes, where one side is a feature map of HW pixels and
the other a handful of tokens. When queries outnumber keys (the projector: HW pixels over L
tokens) it computes the logits key-major, ``(Nk, Nq)``, so the softmax over the L tokens runs
along contiguous pixel rows instead of over millions of rows of length L (20× faster at 128×128).
And the output comes back in the memory order of the queries: queries sliced out of an NCHW map
(pixel axis contiguous) give an output that is a transposed view of a contiguous ``(dv, Nq)``
result, i.e. an NCHW map again, with no copy; channels-last queries give a channels-last output.

``vt.flops`` registers an fvcore handle for the fused op, so both paths are counted the same (one
multiply-add = one FLOP); every explicit matmul below puts the batched operand first, which is
what fvcore's matmul handle assumes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(B, N, h·d) -> (B, h, N, d)`` (a view, whatever the memory order of ``x``)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, h, N, d) -> (B, N, h·d)`` (a view where the layout allows, e.g. one head)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _cpu_flash_pays(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Few queries over many keys, in shapes PyTorch's fused CPU (flash) kernel takes."""
    return (
        q.shape[-2] <= k.shape[-2]
        and q.shape[-1] == k.shape[-1] == v.shape[-1]
        and q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
    )


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float | None,
    return_attention: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``softmax(q kᵀ · scale) v``, softmax over the key axis.

    Args:
        q: ``(B, h, Nq, d)`` queries (may be a transposed view, see the module docstring).
        k: ``(B, h, Nk, d)`` keys.
        v: ``(B, h, Nk, dv)`` values.
        scale: logit multiplier; ``None`` means ``1/sqrt(d)``.
        return_attention: also return the attention weights (explicit path).

    Returns:
        ``(out, attn)``: ``out (B, h, Nq, dv)``; ``attn (B, h, Nq, Nk)`` (rows sum to 1) or ``None``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if not return_attention and (q.device.type != "cpu" or _cpu_flash_pays(q, k, v)):
        return F.scaled_dot_product_attention(q, k, v, scale=scale), None
    if q.shape[-2] <= k.shape[-2]:  # few queries (tokens) over many keys: softmax along rows
        logits = torch.matmul(q, k.transpose(-2, -1))  # (B, h, Nq, Nk)
        attn = torch.softmax(logits if scale == 1.0 else logits * scale, dim=-1)
        return torch.matmul(attn, v), attn if return_attention else None
    logits_t = torch.matmul(k, q.transpose(-2, -1))  # (B, h, Nk, Nq): key-major
    attn_t = torch.softmax(logits_t if scale == 1.0 else logits_t * scale, dim=-2)
    if q.stride(-2) == 1:  # pixel axis contiguous (NCHW queries): a view of a (dv, Nq) result
        out = torch.matmul(v.transpose(-2, -1), attn_t).transpose(-2, -1)
    else:
        out = torch.matmul(attn_t.transpose(-2, -1), v)
    return out, attn_t.transpose(-2, -1) if return_attention else None
