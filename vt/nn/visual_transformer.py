"""The VT module: tokenizer -> transformer -> projector (method §2).

One parametrised module covers the paper's model and every ablation of its Table (method §5.1):
tokenizer kind (filter / recurrent / pooling), token relation (transformer / none), projector on or
off, any number of tokens.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from torch import Tensor, nn

from vt.nn.projector import Projector
from vt.nn.tokenizer import FilterTokenizer, PoolingTokenizer, QueryKind, RecurrentTokenizer, SoftmaxAxis
from vt.nn.transformer import TokenTransformer

TokenizerKind = Literal["filter", "recurrent", "pooling"]
RelationKind = Literal["transformer", "none"]


class VTOutput(NamedTuple):
    """What a VT module returns.

    features: ``(B, C_out, H, W)`` the projected map (the input map when there is no projector).
    tokens: ``(B, L, C_T)`` the transformer's output tokens.
    attention: with ``return_attention=True``, ``{"tokenizer": (B, HW, L') A, softmax over HW;
        "transformer": (B, heads, L, L), softmax over the key tokens; "projector": (B, heads, HW, L),
        softmax over tokens}`` (entries absent where the part is absent); otherwise ``None``. (A
        stack of modules, ``vt.models.VTStage``, returns one such dict per module.)
    """

    features: Tensor
    tokens: Tensor
    attention: dict[str, Tensor] | None = None


class VisualTransformer(nn.Module):
    """One VT module.

    Args:
        in_channels: C, channels of the incoming map.
        num_tokens: L.
        token_channels: C_T.
        out_channels: channels of the projected map (default C).
        tokenizer: "filter" (first module), "recurrent" (later modules) or "pooling" (ablation).
        prev_token_channels: width of the previous module's tokens (recurrent; default C_T).
        recurrent_tokens: tokens recomputed by a recurrent tokenizer (default all; others carried).
        literal_tokenizer: a recurrent tokenizer exactly as Eq. (3)-(4), without our query
            LayerNorm, 1/√C logit scale and centred queries (see :mod:`vt.nn.tokenizer` for why
            they are on).
        queries: what a recurrent tokenizer's queries are made of: "tokens" (Eq. 3), "centred"
            (the tokens minus their mean over L) or "both" (default: the two, each normalised,
            added; distinct maps from the second module on, see :mod:`vt.nn.tokenizer`).
        softmax_over: the tokenizers' softmax axis: "pixels" (Eq. 1, 4; default) or "tokens"
            (the L tokens compete for each pixel, so maps cannot all move together; method §8,
            :mod:`vt.nn.tokenizer`). ``literal_tokenizer`` keeps "pixels".
        relation: "transformer" or "none" (ablation: tokens pass through unchanged).
        projector: build and run the projector (a network whose head reads only tokens has no use
            for its last module's projector).
        qk_channels: transformer key/query width (default C_T // 2).
        ffn_channels: transformer MLP hidden width (default C_T).
        heads: transformer heads.
        value_proj: transformer value projection.
        projector_qk_channels: projector query/key width (default C).
        projector_groups: groups of the projector's pixel-side query convolution.
        projector_heads: projector heads.
        norm: LayerNorm in the transformer, BatchNorm on the projector branch.
        drop_path: stochastic depth of the residual branches.
    """

    def __init__(
        self,
        in_channels: int,
        num_tokens: int,
        token_channels: int,
        out_channels: int | None = None,
        tokenizer: TokenizerKind = "filter",
        prev_token_channels: int | None = None,
        recurrent_tokens: int | None = None,
        literal_tokenizer: bool = False,
        queries: QueryKind = "both",
        softmax_over: SoftmaxAxis = "pixels",
        relation: RelationKind = "transformer",
        projector: bool = True,
        qk_channels: int | None = None,
        ffn_channels: int | None = None,
        heads: int = 1,
        value_proj: bool = False,
        projector_qk_channels: int | None = None,
        projector_groups: int = 1,
        projector_heads: int = 1,
        norm: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {drop_path}")
        self.out_channels = out_channels or in_channels
        if literal_tokenizer:  # Eq. 1-4 as written: every map a softmax over the pixels
            softmax_over = "pixels"
        if tokenizer == "filter":
            self.tokenizer: nn.Module = FilterTokenizer(
                in_channels, num_tokens, token_channels, unit_init=True, softmax_over=softmax_over
            )
        elif tokenizer == "recurrent":
            self.tokenizer = RecurrentTokenizer(
                in_channels, num_tokens, token_channels, prev_token_channels, recurrent_tokens,
                queries="tokens" if literal_tokenizer else queries,
                softmax_over=softmax_over,
                **(dict(norm=False, scale=1.0) if literal_tokenizer else {}),
            )
        elif tokenizer == "pooling":
            self.tokenizer = PoolingTokenizer(in_channels, num_tokens, token_channels)
        else:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose 'filter', 'recurrent' or 'pooling'")
        if relation == "transformer":
            self.transformer: TokenTransformer | None = TokenTransformer(
                token_channels, qk_channels, ffn_channels, heads, value_proj, norm, drop_path
            )
        elif relation == "none":
            self.transformer = None
        else:
            raise ValueError(f"unknown relation {relation!r}; choose 'transformer' or 'none'")
        if not projector and self.out_channels != in_channels:
            raise ValueError("without a projector the map cannot change width; drop out_channels")
        self.projector = (
            Projector(
                in_channels, token_channels, self.out_channels, projector_qk_channels,
                projector_groups, projector_heads, norm=norm, drop_path=drop_path,
            )
            if projector
            else None
        )

    def forward(
        self, x: Tensor, tokens: Tensor | None = None, return_attention: bool = False, project: bool = True
    ) -> VTOutput:
        """``x: (B, C, H, W)``, ``tokens: (B, L, C_T_prev)`` (recurrent only) -> :class:`VTOutput`.

        ``project=False`` skips the projector (the map is returned unchanged): a caller that reads
        only the tokens must not pay for a map it throws away.
        """
        attention: dict[str, Tensor] = {}
        tokens, a = self.tokenizer(x, tokens, return_attention)
        if a is not None:
            attention["tokenizer"] = a
        if self.transformer is not None:
            tokens, a = self.transformer(tokens, return_attention)
            if a is not None:
                attention["transformer"] = a
        if self.projector is not None and project:
            x, a = self.projector(x, tokens, return_attention)
            if a is not None:
                attention["projector"] = a
        return VTOutput(x, tokens, attention if return_attention else None)
