"""Behaviour of the paper's building blocks (method §2)."""

from __future__ import annotations

import copy

import pytest
import torch

from vt.analysis import attention_entropy, mean_pairwise_cosine
from vt.flops import count
from vt.nn import (
    FilterTokenizer,
    PoolingTokenizer,
    Projector,
    RecurrentTokenizer,
    TokenTransformer,
    VisualTransformer,
    fold_batchnorm,
)
from vt.nn.tokenizer import compete

B, C, H, W, L, CT = 2, 32, 5, 7, 4, 48


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(B, C, H, W)


def test_filter_tokenizer_shapes(x: torch.Tensor) -> None:
    tokens, attn = FilterTokenizer(C, L, CT)(x, return_attention=True)
    assert tokens.shape == (B, L, CT) and attn.shape == (B, H * W, L)


def test_tokenizer_attention_sums_to_one_over_pixels(x: torch.Tensor) -> None:
    _, attn = FilterTokenizer(C, L, CT)(x, return_attention=True)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(B, L))


def test_filter_tokens_are_attention_weighted_pixel_averages(x: torch.Tensor) -> None:
    tok = FilterTokenizer(C, L, C)  # C_T = C: no width projection, Eq. (2) literally
    tokens, attn = tok(x, return_attention=True)
    pixels = x.flatten(2).transpose(1, 2)
    a = torch.softmax(pixels @ tok.filter.weight.view(L, C).T, dim=1)  # Eq. (1)
    torch.testing.assert_close(attn, a)
    torch.testing.assert_close(tokens, a.transpose(1, 2) @ pixels)


def test_recurrent_tokenizer_needs_previous_tokens(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="previous module's tokens"):
        RecurrentTokenizer(C, L, CT)(x)


def test_recurrent_tokenizer_queries_come_from_tokens(x: torch.Tensor) -> None:
    tok = RecurrentTokenizer(C, L, CT)
    prev = torch.randn(B, L, CT)
    _, a1 = tok(x, prev, return_attention=True)
    _, a2 = tok(x, prev.flip(1), return_attention=True)  # token l now asks what token L-1-l asked
    torch.testing.assert_close(a2, a1.flip(2))
    torch.testing.assert_close(a1.sum(dim=1), torch.ones(B, L))


def test_literal_recurrent_tokenizer_is_eq_4() -> None:
    tok = RecurrentTokenizer(C, L, CT, norm=False, scale=1.0, queries="tokens")
    x, prev = torch.randn(B, C, H, W), torch.randn(B, L, CT)
    tokens, attn = tok(x, prev, return_attention=True)
    pixels = x.flatten(2).transpose(1, 2)
    a = torch.softmax(pixels @ (prev @ tok.token_to_filter.weight.T).transpose(1, 2), dim=1)  # Eq. (3)-(4)
    torch.testing.assert_close(attn, a)
    torch.testing.assert_close(tokens, tok.proj(a.transpose(1, 2) @ pixels))


def test_recurrent_queries_ignore_what_all_tokens_share(x: torch.Tensor) -> None:
    # The collapse this guards against: tokens that share a large common vector made 16 identical
    # queries. Centred, the queries are made of what the tokens differ in, so adding any vector to
    # every token changes nothing.
    tok = RecurrentTokenizer(C, L, CT, queries="centred")
    prev = torch.randn(B, L, CT)
    common = 100 * torch.randn(B, 1, CT)
    t1, a1 = tok(x, prev, return_attention=True)
    t2, a2 = tok(x, prev + common, return_attention=True)
    torch.testing.assert_close(a2, a1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(t2, t1, rtol=1e-4, atol=1e-5)


def test_uncentred_recurrent_queries_collapse_onto_a_common_token_vector(x: torch.Tensor) -> None:
    tok = RecurrentTokenizer(C, L, CT, queries="tokens")
    prev = torch.randn(B, L, CT) + 100 * torch.randn(B, 1, CT)
    _, attn = tok(x, prev, return_attention=True)
    assert mean_pairwise_cosine(attn.transpose(1, 2)).min() > 0.99


def test_default_queries_keep_the_shared_part_and_stay_distinct() -> None:
    # "both": LN(Q) + LN_c(Q - mean Q). A common vector 100x the tokens' spread sets the shared
    # half of every query, which "centred" would drop, and the maps still differ.
    torch.manual_seed(0)
    c, ct = 64, 32
    x = torch.randn(B, c, 8, 8)
    tok = RecurrentTokenizer(c, L, ct)
    assert tok.queries == "both"
    prev = torch.randn(B, L, ct) + 100 * torch.randn(B, 1, ct)
    _, attn = tok(x, prev, return_attention=True)
    assert mean_pairwise_cosine(attn.transpose(1, 2)).max() < 0.8
    q = tok.token_to_filter(prev)
    shared = torch.nn.functional.layer_norm(q, (c,))
    centred = torch.nn.functional.layer_norm(q - q.mean(dim=1, keepdim=True), (c,))
    a = torch.softmax(x.flatten(2).transpose(1, 2) @ (shared + centred).transpose(1, 2) * c**-0.5, dim=1)
    torch.testing.assert_close(attn, a, rtol=1e-4, atol=1e-6)


def test_unknown_query_kind_is_one_line() -> None:
    with pytest.raises(ValueError, match="unknown queries 'mean'; choose one of tokens, centred, both"):
        RecurrentTokenizer(C, L, CT, queries="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1.0, 30.0])
def test_recurrent_attention_is_not_one_hot_at_init_whatever_the_token_size(size: float) -> None:
    # Large tokens made the literal Eq. 4 softmax one-hot from the first step (no gradient); the
    # LayerNorm and 1/sqrt(C) keep the recurrent logits on the filter tokenizer's scale.
    torch.manual_seed(0)
    c = 256
    x = torch.randn(B, c, 14, 14)
    filter_entropy = attention_entropy(FilterTokenizer(c, L, CT)(x, return_attention=True)[1]).mean()
    _, attn = RecurrentTokenizer(c, L, CT)(x, size * torch.randn(B, L, CT), return_attention=True)
    entropy = attention_entropy(attn).mean()
    assert entropy > 0.5 * filter_entropy, (entropy, filter_entropy)
    _, literal = RecurrentTokenizer(c, L, CT, norm=False, scale=1.0)(x, size * torch.randn(B, L, CT), return_attention=True)
    assert attention_entropy(literal).mean() < 0.5 * filter_entropy


def test_half_recurrence_carries_first_tokens_over(x: torch.Tensor) -> None:
    tok = RecurrentTokenizer(C, L, CT, recurrent_tokens=L // 2)
    prev = torch.randn(B, L, CT)
    tokens, attn = tok(x, prev, return_attention=True)
    assert tokens.shape == (B, L, CT) and attn.shape == (B, H * W, L // 2)
    torch.testing.assert_close(tokens[:, : L // 2], prev[:, : L // 2])


def test_pooling_tokenizer_shapes(x: torch.Tensor) -> None:
    tokens, attn = PoolingTokenizer(C, L, CT)(x)
    assert tokens.shape == (B, L, CT) and attn is None


def test_transformer_attention_sums_to_one_over_tokens() -> None:
    t = torch.randn(B, L, CT)
    out, attn = TokenTransformer(CT, heads=2)(t, return_attention=True)
    assert out.shape == (B, L, CT) and attn.shape == (B, 2, L, L)
    torch.testing.assert_close(attn.sum(dim=-1), torch.ones(B, 2, L))


def test_projector_attention_sums_to_one_over_tokens(x: torch.Tensor) -> None:
    out, attn = Projector(C, CT, heads=4)(x, torch.randn(B, L, CT), return_attention=True)
    assert out.shape == x.shape and attn.shape == (B, 4, H * W, L)
    torch.testing.assert_close(attn.sum(dim=-1), torch.ones(B, 4, H * W))


def test_projector_can_widen_the_map(x: torch.Tensor) -> None:
    out, _ = Projector(C, CT, out_channels=2 * C)(x, torch.randn(B, L, CT))
    assert out.shape == (B, 2 * C, H, W)


@pytest.mark.parametrize("kind", ["filter", "recurrent", "pooling"])
def test_fused_and_explicit_attention_agree(x: torch.Tensor, kind: str) -> None:
    vt = VisualTransformer(C, L, CT, tokenizer=kind, heads=2, projector_heads=2).eval()
    prev = torch.randn(B, L, CT)
    fused = vt(x, prev)
    explicit = vt(x, prev, return_attention=True)
    torch.testing.assert_close(fused.features, explicit.features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.tokens, explicit.tokens, rtol=1e-4, atol=1e-5)


def test_visual_transformer_returns_every_attention(x: torch.Tensor) -> None:
    out = VisualTransformer(C, L, CT)(x, return_attention=True)
    assert set(out.attention) == {"tokenizer", "transformer", "projector"}
    assert out.features.shape == x.shape and out.tokens.shape == (B, L, CT)


@pytest.mark.parametrize("kind", ["filter", "recurrent"])
def test_gradient_reaches_every_parameter(x: torch.Tensor, kind: str) -> None:
    vt = VisualTransformer(C, L, CT, tokenizer=kind, out_channels=2 * C, value_proj=True)
    out = vt(x.requires_grad_(), torch.randn(B, L, CT))
    (out.features.square().mean() + out.tokens.square().mean()).backward()
    missing = [n for n, p in vt.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing and x.grad is not None


def test_fvcore_counts_fused_attention_like_explicit_matmuls(x: torch.Tensor) -> None:
    class Explicit(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x, return_attention=True).features

    vt = VisualTransformer(C, L, CT)
    assert count(vt, x).flops == count(Explicit(vt), x).flops


def test_fvcore_counts_the_projector_attention_matmuls(x: torch.Tensor) -> None:
    """Doubling the tokens doubles exactly the attention matmuls and the token-side weights."""
    p = Projector(C, CT, norm=False)
    t1, t2 = torch.randn(B, L, CT), torch.randn(B, 2 * L, CT)
    extra = count(p, x, t2).flops - count(p, x, t1).flops
    per_token = B * (H * W * C * 2 + CT * C * 2)  # q·kᵀ, attn·v, and W_K, W_V per token
    assert extra == L * per_token


def test_unknown_tokenizer_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer 'conv'"):
        VisualTransformer(C, L, CT, tokenizer="conv")  # type: ignore[arg-type]


@pytest.mark.parametrize("heads", [1, 4])
def test_fold_batchnorm_keeps_the_projectors_result(heads: int) -> None:
    torch.manual_seed(0)
    proj = Projector(C, CT, out_channels=2 * C, heads=heads)
    for bn in (proj.norm, proj.shortcut[1]):  # statistics far from the identity
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    proj.eval()
    x, tokens = torch.randn(B, C, H, W), torch.randn(B, L, CT)
    with torch.no_grad():
        expected, _ = proj(x, tokens)  # the BNs run unfolded
        out, _ = fold_batchnorm(proj)(x, tokens)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in proj.modules())
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_refuses_a_training_model() -> None:
    with pytest.raises(ValueError, match=r"call model.eval\(\) first"):
        fold_batchnorm(Projector(C, CT).train())


def test_folded_projector_keeps_the_model_dtype_when_its_batchnorms_stay_fp32() -> None:
    # A common mixed-precision setup: the model in bf16, its BatchNorms kept in fp32.
    proj = Projector(C, CT, out_channels=2 * C).to(torch.bfloat16)
    for bn in (proj.norm, proj.shortcut[1]):
        bn.float()
    proj.eval()
    x, tokens = torch.randn(B, C, H, W, dtype=torch.bfloat16), torch.randn(B, L, CT, dtype=torch.bfloat16)
    with torch.no_grad():
        reference = copy.deepcopy(proj).float()(x.float(), tokens.float())[0]
        out, _ = fold_batchnorm(proj)(x, tokens)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)


def test_unit_init_filters_start_as_unit_directions() -> None:
    torch.manual_seed(0)
    norms = FilterTokenizer(1024, 16, 64, unit_init=True).filter.weight.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(16), atol=0.1, rtol=0)
    default = FilterTokenizer(1024, 16, 64).filter.weight.flatten(1).norm(dim=1)  # PyTorch's: 1/√3
    assert default.max() < 0.7


def test_map_overlap_is_the_mean_pairwise_cosine_of_the_token_maps() -> None:
    from vt.analysis import mean_pairwise_cosine
    from vt.nn import map_overlap

    same = torch.rand(2, 49, 1).expand(2, 49, 16)
    assert map_overlap(same).item() == pytest.approx(1.0, abs=1e-5)
    disjoint = torch.eye(16).repeat(2, 1, 1)  # token l looks only at pixel l
    assert map_overlap(disjoint).item() == pytest.approx(0.0, abs=1e-6)
    assert map_overlap(torch.rand(3, 49, 1)).item() == 0.0
    attn = torch.rand(3, 49, 16).softmax(dim=1).requires_grad_()
    overlap = map_overlap(attn)
    assert overlap.item() == pytest.approx(mean_pairwise_cosine(attn.transpose(1, 2)).mean().item(), rel=1e-5)
    overlap.backward()
    assert attn.grad is not None and attn.grad.abs().sum() > 0


def test_vt_resnet_returns_the_overlap_of_its_modules_maps_with_the_same_logits() -> None:
    from vt.analysis import module_token_diversity
    from vt.models import create_model

    torch.manual_seed(0)
    model = create_model("vt_resnet18", num_classes=5, token_channels=64, qk_channels=32, ffn_channels=64).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        logits, overlap = model(x, return_map_overlap=True)
        expected = torch.tensor([s.attention_cosine for s in module_token_diversity(model, x)]).mean()
        assert torch.allclose(logits, model(x), atol=1e-5)
    assert overlap.item() == pytest.approx(expected.item(), rel=1e-4)
    pooled = create_model("vt_resnet18", num_classes=5, token_channels=64, tokenizer="pooling").eval()
    assert pooled(x, return_map_overlap=True)[1].item() == 0.0  # no maps, no term


def test_competing_tokens_split_every_pixel_and_stay_pixel_averages(x: torch.Tensor) -> None:
    # softmax_over="tokens": at each pixel the L tokens' shares sum to 1; each map is then
    # renormalised over the pixels, so a token is still a weighted average of pixels.
    tok = RecurrentTokenizer(C, L, C, softmax_over="tokens")
    prev = torch.randn(B, L, C)
    tokens, attn = tok(x, prev, return_attention=True)
    pixels = x.flatten(2).transpose(1, 2)
    share = torch.softmax(pixels @ tok.make_queries(prev).transpose(1, 2) * tok.scale, dim=2)  # (B, HW, L)
    torch.testing.assert_close(share.sum(dim=2), torch.ones(B, H * W))
    torch.testing.assert_close(attn, share / share.sum(dim=1, keepdim=True), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(B, L))
    torch.testing.assert_close(tokens, attn.transpose(1, 2) @ pixels, rtol=1e-4, atol=1e-5)


def test_competing_tokens_ignore_a_logit_every_token_adds(x: torch.Tensor) -> None:
    # The collapse mechanism of method §8: one query direction that every token shares adds the same
    # logit to every token at a pixel; with a softmax over the pixels it decides where every map
    # peaks, with one over the tokens it cancels.
    pixels = x.flatten(2).transpose(1, 2)
    q = torch.randn(B, L, C)
    shared = 50 * torch.randn(B, 1, C)
    _, a1 = compete(q, pixels, C**-0.5)
    _, a2 = compete(q + shared, pixels, C**-0.5)
    torch.testing.assert_close(a2, a1, rtol=1e-4, atol=1e-6)
    per_pixel = torch.softmax((pixels @ (q + shared).transpose(1, 2)) * C**-0.5, dim=1)
    for b in range(B):  # softmax over pixels: every map peaks on one pixel; over tokens: not
        assert per_pixel[b].argmax(dim=0).unique().numel() == 1 < a1[b].argmax(dim=1).unique().numel()


def test_softmax_over_is_checked_and_the_literal_tokenizer_keeps_eq_4() -> None:
    with pytest.raises(ValueError, match="unknown softmax_over 'channels'; choose one of pixels, tokens"):
        RecurrentTokenizer(C, L, CT, softmax_over="channels")  # type: ignore[arg-type]
    for kind in ("filter", "recurrent"):
        vt = VisualTransformer(C, L, CT, tokenizer=kind, literal_tokenizer=True, softmax_over="tokens")
        assert vt.tokenizer.softmax_over == "pixels"
        assert VisualTransformer(C, L, CT, tokenizer=kind, softmax_over="tokens").tokenizer.softmax_over == "tokens"


def test_competing_tokenizers_cost_the_same_flops_and_parameters() -> None:
    # Only the softmax's axis changes: the same two matmuls per tokenizer (method §8).
    x = torch.randn(1, C, 8, 8)
    prev = torch.randn(1, L, CT)
    for kind in ("filter", "recurrent"):
        torch.manual_seed(0)
        paper = VisualTransformer(C, L, CT, tokenizer=kind).eval()
        torch.manual_seed(0)
        competing = VisualTransformer(C, L, CT, tokenizer=kind, softmax_over="tokens").eval()
        competing.load_state_dict(paper.state_dict())  # same parameters, same names
        inputs = (x,) if kind == "filter" else (x, prev)
        assert count(competing, *inputs).flops == count(paper, *inputs).flops > 0
