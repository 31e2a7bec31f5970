"""Projector: pixels read what they need from the tokens and add it back (spec §2.4).

    X_out = X_in + softmax_L((X_in W_Q)(T W_K)ᵀ) T                      (Eq. 7)

Implementation choices (spec §2.5), each a constructor argument:
  * ``W_Q`` is a 1×1 convolution on the pixels, optionally grouped (``groups``; the earlier arXiv
    pseudo code used 16): at C = 1024 a dense C×C weight on 196 pixels alone costs 205 MFLOPs,
    which the paper's budget (spec §5.4) does not allow.
  * Values are the tokens themselves where their width matches the output map; otherwise (or with
    ``value_proj``) a bias-free linear map ``W_V: C_T -> C_out`` is applied to the L tokens.
  * The added branch goes through a BatchNorm (``norm``), like the last BN of a ResNet block.
  * A projector may widen the map (``out_channels != in_channels``, e.g. VT-R18's 256 -> 512); the
    residual then takes a 1×1 convolution + BN, as a ResNet stage's first block does.
  * logits are scaled by ``1/sqrt(d_head)``.

In evaluation the branch's BatchNorm is a fixed per-channel affine map, and since every pixel's
attention over the tokens sums to 1, ``BN(A V) = A (V s + c)``: it is folded into the L token
values instead of run over the HW pixels (likewise the shortcut's BN into its convolution). Same
result up to rounding; one memory-bound pass over the output map fewer. (So in evaluation the
BNs' forward hooks do not fire, and fvcore, which counts models in eval mode, does not count them:
0.4 MFLOPs of VT-ResNet-18's 1556.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vt.nn.attention import attend, merge_heads, split_heads
from vt.nn.layers import ConvBN, DropPath, frozen_norm_affine


class Projector(nn.Module):
    """Eq. (7): ``x: (B, C_in, H, W)``, ``tokens: (B, L, C_T)`` -> ``(B, C_out, H, W)``.

    Args:
        in_channels: C_in, channels of the incoming map.
        token_channels: C_T.
        out_channels: C_out (default C_in).
        qk_channels: width of pixel queries and token keys (default C_in, the paper's C×C).
        groups: groups of the pixel-side query convolution W_Q.
        heads: attention heads; must divide ``qk_channels`` and ``out_channels``.
        value_proj: always apply W_V (it is applied anyway when C_T != C_out).
        norm: BatchNorm on the added branch.
        drop_path: stochastic-depth probability of the added branch.
    """

    def __init__(
        self,
        in_channels: int,
        token_channels: int,
        out_channels: int | None = None,
        qk_channels: int | None = None,
        groups: int = 1,
        heads: int = 1,
        value_proj: bool = False,
        norm: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        qk_channels = qk_channels or in_channels
        if qk_channels % heads or out_channels % heads:
            raise ValueError(f"heads={heads} must divide qk_channels={qk_channels} "
                             f"and out_channels={out_channels}")
        self.heads = heads
        self.query = nn.Conv2d(in_channels, qk_channels, 1, groups=groups, bias=False)  # W_Q
        self.key = nn.Linear(token_channels, qk_channels, bias=False)  # W_K
        self.value = (
            nn.Linear(token_channels, out_channels, bias=False)  # W_V
            if value_proj or token_channels != out_channels
            else nn.Identity()
        )
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else ConvBN(in_channels, out_channels)
        )
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: Tensor, tokens: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Returns the enhanced map ``(B, C_out, H, W)`` and, if asked, ``attn: (B, heads, HW, L)``.

        ``attn[b, h, p, :]`` sums to 1 over the tokens (softmax_L). The map comes back in the memory
        format of ``x`` (NCHW or channels-last) without a copy: see :mod:`vt.nn.attention`.
        """
        b, _, h, w = x.shape
        q = split_heads(self.query(x).flatten(2).transpose(1, 2), self.heads)  # (B, h, HW, d)
        k = split_heads(self.key(tokens), self.heads)  # (B, h, L, d)
        values = self.value(tokens)  # (B, L, C_out)
        affine = frozen_norm_affine(self.norm)
        if affine is not None:  # evaluation: BN(A V) = A (V s + c), see the module docstring
            values = torch.addcmul(affine[1].to(values.dtype), values, affine[0].to(values.dtype))
        v = split_heads(values, self.heads)  # (B, h, L, C_out/h)
        out, attn = attend(q, k, v, None, return_attention)  # Eq. (7)
        out = merge_heads(out).transpose(1, 2).reshape(b, -1, h, w)
        if affine is None:
            out = self.norm(out)
        return self.shortcut(x) + self.drop_path(out), attn
