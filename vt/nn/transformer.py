"""Transformer over visual tokens (method §2.3).

Self-attention among the L tokens, then a pointwise two-layer MLP, each with a residual:

    T'_out = T_in + softmax_L((T_in K)(T_in Q)ᵀ) T_in      (Eq. 5)
    T_out  = T'_out + σ(T'_out F1) F2                      (Eq. 6)

Implementation choices (method §2.5), each a constructor argument:
  * ``qk_channels`` (default C_T/2) is the width of keys and queries, split over ``heads`` heads;
    values are the tokens themselves, split the same way, unless ``value_proj`` adds a C_T×C_T
    value map (the earlier arXiv versions had one).
  * logits are scaled by ``1/sqrt(d_head)``: without it 512-wide unnormalised dot products saturate
    the softmax at initialisation.
  * ``norm=True`` applies a LayerNorm to the input of each residual branch (pre-norm), which keeps
    the residual stream's scale in check across stacked modules; Eq. (5)/(6) are otherwise literal.
  * ``ffn_channels`` (default C_T) is the hidden width of F1/F2, σ = ReLU.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from vt.nn.attention import attend, merge_heads, split_heads


class TokenTransformer(nn.Module):
    """Eq. (5)-(6) on ``tokens: (B, L, C_T)``.

    Args:
        token_channels: C_T.
        qk_channels: width of keys and queries (default C_T // 2).
        ffn_channels: hidden width of the MLP (default C_T).
        heads: attention heads; must divide ``qk_channels`` and ``token_channels``.
        value_proj: add a C_T×C_T value projection.
        norm: pre-norm LayerNorm on each branch.
        drop_path: stochastic-depth probability of each residual branch.
    """

    def __init__(
        self,
        token_channels: int,
        qk_channels: int | None = None,
        ffn_channels: int | None = None,
        heads: int = 1,
        value_proj: bool = False,
        norm: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        qk_channels = qk_channels or token_channels // 2
        ffn_channels = ffn_channels or token_channels
        if qk_channels % heads or token_channels % heads:
            raise ValueError(f"heads={heads} must divide qk_channels={qk_channels} "
                             f"and token_channels={token_channels}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(token_channels) if norm else nn.Identity()
        self.key = nn.Linear(token_channels, qk_channels, bias=False)  # K
        self.query = nn.Linear(token_channels, qk_channels, bias=False)  # Q
        self.value = nn.Linear(token_channels, token_channels, bias=False) if value_proj else nn.Identity()
        self.norm2 = nn.LayerNorm(token_channels) if norm else nn.Identity()
        self.ffn = nn.Sequential(
            nn.Linear(token_channels, ffn_channels),  # F1
            nn.ReLU(inplace=True),  # σ
            nn.Linear(ffn_channels, token_channels),  # F2
        )
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, tokens: Tensor, return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """``tokens: (B, L, C_T)`` -> ``(B, L, C_T)`` and, if asked, ``attn: (B, heads, L, L)``.

        ``attn[b, h, i, :]`` sums to 1 over the tokens (softmax_L).
        """
        t = self.norm1(tokens)
        # Eq. (5): row i of (T K)(T Q)ᵀ holds token i's logits over all tokens.
        out, attn = attend(
            split_heads(self.key(t), self.heads),
            split_heads(self.query(t), self.heads),
            split_heads(self.value(t), self.heads),
            None,
            return_attention,
        )
        tokens = tokens + self.drop_path(merge_heads(out))
        tokens = tokens + self.drop_path(self.ffn(self.norm2(tokens)))  # Eq. (6)
        return tokens, attn
