"""Tokenizers: group the pixels of a feature map into L visual tokens (method §2.1, §2.2).

Both tokenizers are "L token queries attend over the HW pixels": the softmax runs over the spatial
axis, so each token is an attention-weighted average of pixels. They differ only in where the
queries come from: a learned pointwise filter ``W_A`` (first VT module) or the previous module's
tokens (every later module). A pooling tokenizer (bilinear downsampling to L pixels) is kept for the
paper's ablation.

Implementation choices the paper leaves open (method §2.5), stated here once:
  * Tokens are pooled at the map's width C and then, where ``token_channels != C``, projected to
    C_T by one linear map applied to the L tokens. Because ``Aᵀ(X W) = (AᵀX) W`` this is the same as
    a value projection of every pixel, at L/HW of the cost (method §5.4: no C×C weight may touch every
    pixel).
  * ``W_A`` is a bias-free 1×1 convolution; the filter tokenizer's spatial softmax is unscaled, as
    in Eq. (1). ``unit_init`` starts each of its L filters as a random direction of unit norm
    (entries N(0, 1/C)), the scale of the recurrent tokenizer's normalised, ``1/√C``-scaled
    queries, so both tokenizers start with logits that spread like the pixels' deviations.
    PyTorch's default convolution init is √3 times smaller, which leaves the first module's maps
    of a fresh VT-ResNet-18 (post-ReLU pixels of small spread) nearly uniform, hence nearly
    equal; the VT modules of a VT-ResNet (:class:`~vt.nn.VisualTransformer`) use it. VT-FPN's
    tokenizers read FPN levels, which are not post-ReLU and spread more, and trained clearly
    worse with it, so they keep PyTorch's init (method §8 has both measurements).
  * The recurrent tokenizer LayerNorms its queries ``W_R = LN(T_in W_{T->R})`` and scales its
    logits ``X W_Rᵀ`` by ``1/√C``. Queries made from tokens have entries of the size of the trunk's
    activations, where a learned ``W_A`` has entries O(1/√C); normalised and scaled, each query is
    a unit direction whose logits spread like the pixels' deviations along it, as the filter
    tokenizer's do. Unnormalised ones could make the softmax one-hot from the first step and pass
    back almost no gradient. The LayerNorm's gain learns the temperature. Cost: ``2 C``
    parameters and a LayerNorm over L queries.
  * ``queries`` says what the recurrent queries are made of (method §8 has the measurements).
    Tokens are attention-weighted averages of post-ReLU pixels, which share a large common
    vector (the image's mean feature), so every token carries it, and the transformer's residual
    token mixing adds more of it. ``W_{T->R}`` is linear: it maps that shared vector to the same
    query for every token, and once it dominates, all L queries point the same way and every
    token attends to the same pixel. From the second module on this is what Eq. 3 does
    (``queries="tokens"``), at initialisation and after training. With ``Q = T_in W_{T->R}``:

      - ``"tokens"``: ``W_R = LN(Q)``, Eq. 3 (normalised).
      - ``"centred"``: ``W_R = LN(Q - mean_L Q)``, the queries from what the tokens differ in
        (``= (T_in - mean_L T_in) W_{T->R}``: ``W_{T->R}`` has no bias). Any vector added to
        every token leaves them unchanged; the maps stay distinct, but in our budgets the
        models learned more slowly, and the full-width VT-ResNet-34 of the synthetic job not at
        all: what the tokens share is also where the object is.
      - ``"both"`` (default): ``W_R = LN(Q) + LN_c(Q - mean_L Q)``, each query the shared part
        plus its own, both of unit scale at initialisation, with separate LayerNorm gains, so
        training sets their balance per channel. It keeps the maps distinct at initialisation
        in every module of every VT-ResNet, with no accuracy difference from ``"tokens"`` that
        three seeds resolve (method §8).
        Training with the paper's loss still pulls module 2's maps onto the same few pixels,
        whatever the queries, and not by making them alike: the L queries stay as distinct
        as at initialisation, and 16 random queries still find 12-13 peaks on the trained map.
        The pixels come to vary most along the shared term ``LN(Q)``, one logit every token
        adds, so it decides where each map peaks (method §8). Nothing in the classification
        loss asks for distinct maps; `map_overlap` is the loss term that does
        (``ClassificationTask(token_diversity=...)``).

    Centring uses the mean over the tokens being recomputed (all L unless ``recurrent_tokens <
    L``), taken after ``W_{T->R}``: the same queries by linearity, and no second projection. Both
    cost no FLOPs fvcore counts beyond a LayerNorm over L queries, and ``"both"`` ``2 C``
    parameters.
  * ``softmax_over`` says which axis the tokenizer's softmax runs over (method §8 has the
    measurements). ``"pixels"`` (default) is Eq. 1 and 4: each token's map is a distribution over
    the HW pixels. A logit that every token adds at a pixel (the shared query term ``LN(Q)``, or
    a pixel whose features grow along the direction all queries share) then moves every map the
    same way, and training makes it decide where every map peaks. ``"tokens"``: at each pixel the
    L tokens share it out (a softmax over the tokens, as in slot attention, Locatello et al.
    2020), then each token's shares are normalised over the pixels, so a token is still a
    weighted average of pixels (:func:`compete`). A logit every token adds cancels in that
    softmax, so it cannot pull the maps together: after our 4-epoch runs the last module's maps
    peak on 6.9-8.4 distinct pixels of 16 where the default's peak on 1.8-2.5. It is not the
    paper's equation, and it costs accuracy where one object decides the label (4.9 ± 4.8 points
    on the 64-px job and 11.9 ± 9.5 on the JPEG shapes, six seeds; −1.8 ± 5.0 on two-object
    scenes; method §8), and a head that attends over the tokens instead of averaging them does
    not win it back. So it stays an option. Same matmuls, same FLOPs and parameters; the kernel is the explicit
    one (the fused attention kernels only take a softmax over the keys).
  * Normalising the pixels (keys) before the spatial softmax was tried with the centring and not
    kept: it made the maps flatter, not more distinct, at initialisation. A learned scalar gate
    that adds a share of the mean token back to centred queries (zero at initialisation) was
    tried too: VT-ResNet-34 still stayed at chance.

    ``norm=False, scale=1.0, queries="tokens", softmax_over="pixels"`` is the literal Eq. (3)-(4)
    (``VisualTransformer(literal_tokenizer=True)``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vt.analysis import mean_pairwise_cosine
from vt.nn.attention import _scaled, attend

QueryKind = Literal["tokens", "centred", "both"]
QUERY_KINDS: tuple[str, ...] = QueryKind.__args__
SoftmaxAxis = Literal["pixels", "tokens"]
SOFTMAX_AXES: tuple[str, ...] = SoftmaxAxis.__args__


def compete(q: Tensor, pixels: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Tokens compete for pixels: softmax over the L tokens at each pixel, then each map over HW.

    ``softmax_over="tokens"`` of the tokenizers (module docstring). The shares ``S = softmax_L``
    are normalised over the pixels in log space, ``A = softmax_HW(log S)``, the same as
    ``S / Σ_HW S`` but finite where a token's shares underflow at every pixel (a token that wins
    nowhere, e.g. under the filter tokenizer's unscaled logits): its map then still peaks where it
    loses least, instead of being all zeros.

    ``q: (B, L, C)``, ``pixels: (B, HW, C)`` -> ``tokens (B, L, C)``, ``A (B, L, HW)`` (each row sums
    to 1, so a token is still an attention-weighted average of pixels).
    """
    logits = torch.matmul(q, pixels.transpose(1, 2))
    attn = torch.softmax(torch.log_softmax(_scaled(logits, scale), dim=1), dim=2)
    return torch.matmul(attn, pixels), attn


def _token_projection(in_channels: int, token_channels: int) -> nn.Module:
    """C -> C_T on the L pooled tokens; identity where the widths already agree."""
    if in_channels == token_channels:
        return nn.Identity()
    return nn.Linear(in_channels, token_channels, bias=False)


def map_overlap(attn: Tensor, eps: float = 1e-12) -> Tensor:
    """How alike the L tokens' spatial maps are: the token-diversity penalty (method §8).

    The mean pairwise cosine of the maps ``A[:, l]``, over the ``L(L-1)/2`` pairs and the batch;
    differentiable, so a training loss can add it (``ClassificationTask(token_diversity=...)``).
    Maps are non-negative, so it lies in [0, 1]: 1 when every token attends alike, 0 when no two
    tokens share a pixel. (`vt.analysis.token_diversity` reports the same number per image.)

    ``attn: (B, HW, L)`` -> a scalar; 0 for a single token.
    """
    if attn.shape[2] < 2:
        return attn.new_zeros(())
    return mean_pairwise_cosine(attn.transpose(1, 2), eps).mean()


def _checked(option: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; otherwise a one-line ``ValueError`` naming ``option``."""
    if value not in choices:
        raise ValueError(f"unknown {option} {value!r}; choose one of {', '.join(choices)}")
    return value


def _tokenize(
    queries: Tensor, pixels: Tensor, scale: float, softmax_over: str, return_attention: bool
) -> tuple[Tensor, Tensor | None]:
    """``queries: (B, L, C)`` over ``pixels: (B, HW, C)`` -> ``(B, L, C)`` and, if asked, ``A: (B, HW, L)``."""
    if softmax_over == "tokens":
        t, attn = compete(queries, pixels, scale)
        return t, attn.transpose(1, 2) if return_attention else None
    p = pixels.unsqueeze(1)
    t, attn = attend(queries.unsqueeze(1), p, p, scale, return_attention)
    return t.squeeze(1), None if attn is None else attn.squeeze(1).transpose(1, 2)


class FilterTokenizer(nn.Module):
    """Filter-based tokenizer, method §2.1.

    ``A = softmax_HW(X W_A)`` (Eq. 1), ``T = Aᵀ X`` (Eq. 2), then C -> C_T on the tokens.

    Args:
        in_channels: C, channels of the feature map.
        num_tokens: L, number of visual tokens.
        token_channels: C_T, channels of each output token.
        unit_init: start each of the L filters as a random direction of unit norm (module
            docstring) instead of PyTorch's default convolution init.
        softmax_over: "pixels" (Eq. 1) or "tokens" (tokens compete for pixels; module docstring).
    """

    def __init__(
        self, in_channels: int, num_tokens: int, token_channels: int, unit_init: bool = False,
        softmax_over: SoftmaxAxis = "pixels",
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.softmax_over = _checked("softmax_over", softmax_over, SOFTMAX_AXES)
        self.filter = nn.Conv2d(in_channels, num_tokens, kernel_size=1, bias=False)  # W_A
        if unit_init:
            nn.init.normal_(self.filter.weight, std=in_channels**-0.5)
        self.proj = _token_projection(in_channels, token_channels)

    def forward(
        self, x: Tensor, tokens: Tensor | None = None, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x: (B, C, H, W)`` -> ``tokens (B, L, C_T)`` and, if asked, ``A: (B, HW, L)``.

        ``tokens`` is accepted (and ignored) so every tokenizer has one call signature.
        """
        b, c, h, w = x.shape
        pixels = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        # W_A as the L token queries: softmax_HW(X W_A)ᵀ X is attention of queries W_Aᵀ over pixels.
        queries = self.filter.weight.view(1, self.num_tokens, c).expand(b, -1, -1)
        t, attn = _tokenize(queries, pixels, 1.0, self.softmax_over, return_attention)
        return self.proj(t), attn  # Eq. (1)-(2): T = softmax_HW(X W_A)ᵀ X, (B, L, C_T)


class RecurrentTokenizer(nn.Module):
    """Recurrent tokenizer, method §2.2: the previous module's tokens decide what to look for.

    ``W_R = T_in W_{T->R}`` (Eq. 3; normalised, and by default with a centred part, ``queries``),
    ``T = softmax_HW(X W_Rᵀ)ᵀ X`` (Eq. 4), then C -> C_T.

    With ``recurrent_tokens < L`` (the earlier arXiv versions' pseudo code: half of them) only the
    last ``recurrent_tokens`` input tokens are turned into new ones; the first ``L - recurrent_tokens``
    are carried over unchanged, and the returned attention covers the new tokens only.

    Args:
        in_channels: C, channels of the feature map.
        num_tokens: L, number of tokens in and out.
        token_channels: C_T, channels of the output tokens.
        prev_token_channels: channels of the incoming tokens (default C_T).
        recurrent_tokens: how many tokens are recomputed (default all L).
        scale: multiplies the logits ``X W_Rᵀ`` before the spatial softmax (default ``1/√C``).
        norm: LayerNorm the queries ``W_R`` (default).
        queries: "tokens" (Eq. 3), "centred" or "both" (default): what the queries are made of;
            the module docstring says why. ``norm=False, scale=1.0, queries="tokens"`` is the
            literal Eq. 3-4.
        softmax_over: "pixels" (Eq. 4) or "tokens" (tokens compete for pixels; module docstring).
    """

    def __init__(
        self,
        in_channels: int,
        num_tokens: int,
        token_channels: int,
        prev_token_channels: int | None = None,
        recurrent_tokens: int | None = None,
        scale: float | None = None,
        norm: bool = True,
        queries: QueryKind = "both",
        softmax_over: SoftmaxAxis = "pixels",
    ) -> None:
        super().__init__()
        self.softmax_over = _checked("softmax_over", softmax_over, SOFTMAX_AXES)
        prev_token_channels = prev_token_channels or token_channels
        self.num_tokens = num_tokens
        self.recurrent_tokens = recurrent_tokens or num_tokens
        if not 0 < self.recurrent_tokens <= num_tokens:
            raise ValueError(f"recurrent_tokens must be in 1..{num_tokens}, got {recurrent_tokens}")
        if self.recurrent_tokens < num_tokens and prev_token_channels != token_channels:
            raise ValueError("carrying tokens over needs prev_token_channels == token_channels")
        self.queries = _checked("queries", queries, QUERY_KINDS)
        self.scale = in_channels**-0.5 if scale is None else scale
        self.norm = nn.LayerNorm(in_channels) if norm else nn.Identity()
        self.token_to_filter = nn.Linear(prev_token_channels, in_channels, bias=False)  # W_{T->R}
        # The centred part's own gain and bias: training sets the balance of the two per channel.
        self.norm_centred = (nn.LayerNorm(in_channels) if norm else nn.Identity()) if queries == "both" else None
        self.proj = _token_projection(in_channels, token_channels)

    def make_queries(self, tokens: Tensor) -> Tensor:
        """The queries ``W_R`` of the tokens to recompute: ``tokens: (B, L, C_T_prev)`` -> ``(B, L_new, C)``."""
        # Eq. (3): T_in W_{T->R}; a contiguous slice keeps the GEMM on its fast path
        q = self.token_to_filter(tokens[:, self.num_tokens - self.recurrent_tokens:].contiguous())
        if self.queries == "tokens":
            return self.norm(q)
        # What the tokens differ in (module docstring); with "both", plus what they share.
        centred = q - q.mean(dim=1, keepdim=True)
        return self.norm(centred) if self.norm_centred is None else self.norm(q) + self.norm_centred(centred)

    def forward(
        self, x: Tensor, tokens: Tensor | None = None, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x: (B, C, H, W)``, ``tokens: (B, L, C_T_prev)`` -> ``(B, L, C_T)``, ``A: (B, HW, L_new)``."""
        if tokens is None:
            raise ValueError("RecurrentTokenizer needs the previous module's tokens; "
                             "the first VT module of a network must use a filter tokenizer")
        kept = self.num_tokens - self.recurrent_tokens
        pixels = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        t, attn = _tokenize(self.make_queries(tokens), pixels, self.scale, self.softmax_over, return_attention)
        new = self.proj(t)  # Eq. (4): T = softmax_HW(X W_Rᵀ)ᵀ X
        out = new if kept == 0 else torch.cat([tokens[:, :kept], new], dim=1)
        return out, attn


class PoolingTokenizer(nn.Module):
    """Ablation baseline (method §5.1): tokens are the map bilinearly downsampled to L pixels.

    L must factor as ``h × w`` with h, w as close as possible (16 -> 4×4).
    """

    def __init__(self, in_channels: int, num_tokens: int, token_channels: int) -> None:
        super().__init__()
        h = int(math.isqrt(num_tokens))
        while num_tokens % h:
            h -= 1
        self.grid = (h, num_tokens // h)
        self.proj = _token_projection(in_channels, token_channels)

    def forward(
        self, x: Tensor, tokens: Tensor | None = None, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x: (B, C, H, W)`` -> ``tokens (B, L, C_T)``; no attention map (``None``)."""
        pooled = F.interpolate(x, size=self.grid, mode="bilinear", align_corners=False)
        return self.proj(pooled.flatten(2).transpose(1, 2)), None
