"""The one attention primitive every VT block uses.

All three attentions of the paper (tokenizer: tokens attend over pixels; transformer: tokens over
tokens; projector: pixels over tokens) are ``softmax(q kᵀ · scale) v`` with the softmax over the key
axis. Keeping them in one function, `attend`, gives one place to choose the kernel
(`choose_kernel`); the kernels compute the same ``softmax(q kᵀ · scale) v`` in different orders:

* on GPUs, the fused ``F.scaled_dot_product_attention`` when nobody asks for the attention map;
* on CPUs, the fused kernel only where PyTorch's CPU flash kernel takes the shapes and it pays:
  a few queries over many keys (the tokenizers) with equal query/key/value widths and unit-stride
  rows, i.e. tokens over a channels-last map; it reads the map once instead of twice. Everywhere
  else (value widths C_out or C_T unlike query widths C_T/2, NCHW maps, pixels over tokens) the
  CPU kernel falls back to a path slower than two explicit matmuls, so those are used, as they
  are whenever the notebooks want the map.
* in an exported graph (``torch.export``, ONNX), the fused op, whatever the device: the runtime
  that runs the graph picks its kernel, and a choice made here by comparing sizes would fix the
  graph to one side of that comparison (``torch.export`` turns it into a guard on the dynamic
  height and width).

The explicit kernels are written for the VT shapes, where one side is a feature map of HW pixels
and the other a handful of tokens. When keys outnumber queries (the tokenizers: L tokens over HW
pixels), `_query_major` takes the softmax along the rows of the ``(Nq, Nk)`` logits. When queries
outnumber keys (the projector: HW pixels over L tokens), `_key_major` computes the logits
key-major, ``(Nk, Nq)``, so the softmax over the L tokens runs along contiguous pixel rows instead
of over millions of rows of length L (much faster on large maps). And its output comes back in
the memory order of the queries: queries sliced out of an NCHW map (pixel axis contiguous) give
an output that is a transposed view of a contiguous ``(dv, Nq)`` result, i.e. an NCHW map again,
with no copy; channels-last queries give a channels-last output.

``vt.flops`` registers an fvcore handle for the fused op, so every kernel is counted the same (one
multiply-add = one FLOP); every explicit matmul puts the batched operand first, which is
what fvcore's matmul handle assumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
        return_attention: also return the attention weights.

    Returns:
        ``(out, attn)``: ``out (B, h, Nq, dv)``; ``attn (B, h, Nq, Nk)`` (rows sum to 1) or ``None``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    kernel = choose_kernel(q, k, v, return_attention)
    return kernel(q, k, v, scale, return_attention)


Kernel = Callable[[Tensor, Tensor, Tensor, float, bool], tuple[Tensor, Tensor | None]]


def choose_kernel(q: Tensor, k: Tensor, v: Tensor, return_attention: bool) -> Kernel:
    """The fastest of the kernels below that gives what the caller asks for (module docstring)."""
    if not return_attention and (q.device.type != "cpu" or _exporting() or _cpu_flash_pays(q, k, v)):
        return _fused
    return _query_major if q.shape[-2] <= k.shape[-2] else _key_major


def _exporting() -> bool:
    """Whether ``torch.export`` or the ONNX exporter is tracing the call (module docstring)."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def _cpu_flash_pays(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Few queries over many keys, in shapes PyTorch's fused CPU (flash) kernel takes."""
    return (
        q.shape[-2] <= k.shape[-2]
        and q.shape[-1] == k.shape[-1] == v.shape[-1]
        and q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
    )


def _scaled(logits: Tensor, scale: float) -> Tensor:
    return logits if scale == 1.0 else logits * scale


def _fused(q: Tensor, k: Tensor, v: Tensor, scale: float, return_attention: bool) -> tuple[Tensor, None]:
    """PyTorch's fused kernel; it never forms the attention map."""
    return F.scaled_dot_product_attention(q, k, v, scale=scale), None


def _query_major(
    q: Tensor, k: Tensor, v: Tensor, scale: float, return_attention: bool
) -> tuple[Tensor, Tensor | None]:
    """Few queries (tokens) over many keys: logits ``(Nq, Nk)``, softmax along their rows."""
    attn = torch.softmax(_scaled(torch.matmul(q, k.transpose(-2, -1)), scale), dim=-1)  # (B, h, Nq, Nk)
    return torch.matmul(attn, v), attn if return_attention else None


def _key_major(
    q: Tensor, k: Tensor, v: Tensor, scale: float, return_attention: bool
) -> tuple[Tensor, Tensor | None]:
    """Many queries (pixels) over few keys: logits ``(Nk, Nq)``, output in the queries' memory order."""
    attn_t = torch.softmax(_scaled(torch.matmul(k, q.transpose(-2, -1)), scale), dim=-2)  # (B, h, Nk, Nq)
    if q.stride(-2) == 1:  # pixel axis contiguous (NCHW queries): a view of a (dv, Nq) result
        out = torch.matmul(v.transpose(-2, -1), attn_t).transpose(-2, -1)
    else:
        out = torch.matmul(attn_t.transpose(-2, -1), v)
    return out, attn_t.transpose(-2, -1) if return_attention else None
