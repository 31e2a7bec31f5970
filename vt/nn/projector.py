"""Projector: pixels read what they need from the tokens and add it back (method §2.4).

    X_out = X_in + softmax_L((X_in W_Q)(T W_K)ᵀ) T                      (Eq. 7)

Implementation choices (method §2.5), each a constructor argument:
  * ``W_Q`` is a 1×1 convolution on the pixels, optionally grouped (``groups``; the earlier arXiv
    pseudo code used 16): at C = 1024 a dense C×C weight on 196 pixels alone costs 205 MFLOPs,
    which the paper's budget (method §5.4) does not allow.
  * Values are the tokens themselves where their width matches the output map; otherwise (or with
    ``value_proj``) a bias-free linear map ``W_V: C_T -> C_out`` is applied to the L tokens.
  * The added branch goes through a BatchNorm (``norm``), like the last BN of a ResNet block.
  * A projector may widen the map (``out_channels != in_channels``, e.g. VT-R18's 256 -> 512); the
    residual then takes a 1×1 convolution + BN, as a ResNet stage's first block does.
  * logits are scaled by ``1/sqrt(d_head)``.

For inference, :func:`vt.nn.fold_batchnorm` folds both BatchNorms away (a separate step; the
forward below is Eq. 7 as written).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from vt.nn.attention import attend, merge_heads, split_heads


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
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(
        self, x: Tensor, tokens: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Returns the enhanced map ``(B, C_out, H, W)`` and, if asked, ``attn: (B, heads, HW, L)``.

        ``attn[b, h, p, :]`` sums to 1 over the tokens (softmax_L). The map comes back in the memory
        format of ``x`` (NCHW or channels-last) without a copy: see :mod:`vt.nn.attention`.
        """
        b, _, h, w = x.shape
        q = split_heads(self.query(x).flatten(2).transpose(1, 2), self.heads)  # X_in W_Q: (B, h, HW, d)
        k = split_heads(self.key(tokens), self.heads)  # T W_K: (B, h, L, d)
        v = split_heads(self.value(tokens), self.heads)  # T (W_V): (B, h, L, C_out/h)
        out, attn = attend(q, k, v, None, return_attention)  # softmax_L(q kᵀ) v, Eq. (7)
        # unflatten, not reshape(b, -1, h, w): -1 is ambiguous for an empty batch (B = 0).
        out = merge_heads(out).transpose(1, 2).unflatten(2, (h, w))  # (B, C_out, H, W)
        return self.shortcut(x) + self.drop_path(self.norm(out)), attn
