"""VT-ResNets produce L distinct visual tokens, not one token repeated L times (method §8): at
initialisation and after a short training on multi-object scenes. The recurrent queries as Eq. 3
makes them (``queries="tokens"``) collapse from the second module on; the default ``"both"`` adds
each query's centred part to the shared one. Training with the paper's loss still pulls module 2's
maps together; the token-diversity term (``ClassificationTask(token_diversity=...)``) keeps them
apart, and tokens that compete for pixels (``softmax_over="tokens"``) keep them further apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vt.analysis import TokenDiversity, module_token_diversity
from vt.data import SyntheticShapes
from vt.data.transforms import synthetic_eval, synthetic_train
from vt.models import create_model

VT_RESNETS = ["vt_resnet18", "vt_resnet34", "vt_resnet50", "vt_resnet101"]


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", VT_RESNETS)
def test_fresh_vt_resnet_tokenizers_attend_with_distinct_maps(name: str, noise: torch.Tensor) -> None:
    torch.manual_seed(0)
    stats = module_token_diversity(create_model(name).eval(), noise)
    assert all(s.attention_cosine <= 0.7 for s in stats), stats
    # Not one token L times: the later modules' tokens span more than one direction.
    assert all(s.effective_rank > 1.5 for s in stats[1:]), stats


@pytest.mark.parametrize("queries", ["centred", "both"])
def test_eq_3_queries_collapse_where_centred_ones_do_not(queries: str, noise: torch.Tensor) -> None:
    # The defect: from the second module on, Eq. 3 turns the tokens' shared vector into 16 equal queries.
    stats = {}
    for kind in ("tokens", queries):
        torch.manual_seed(0)
        stats[kind] = module_token_diversity(create_model("vt_resnet18", queries=kind).eval(), noise)[1]
    assert stats["tokens"].attention_cosine > 0.95 and stats["tokens"].distinct_argmax <= 3
    assert stats[queries].attention_cosine < 0.7 and stats[queries].distinct_argmax >= 16 / 4


def _second_module_after_short_training(
    queries: str, token_diversity: float = 0.0, steps: int = 30, softmax_over: str = "pixels"
) -> TokenDiversity:
    """Module 2's diversity on 7×7 maps after ``steps`` steps on scenes of three shapes, trained on
    cross-entropy plus ``token_diversity`` times the maps' overlap (the task's loss)."""
    torch.manual_seed(0)
    size, classes, batch = 112, 4, 16  # 112 px: the VT stage reads a 7×7 map
    train = SyntheticShapes(steps * batch, size, classes, transform=synthetic_train("standard"), objects=3)
    val = SyntheticShapes(16, size, classes, split="val", transform=synthetic_eval(), objects=3)
    model = create_model("vt_resnet18", num_classes=classes, token_channels=256, queries=queries,
                         softmax_over=softmax_over)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True)
    model.train()
    for b in loader:
        optimizer.zero_grad()
        logits, overlap = model(b["image"], return_map_overlap=True)
        (F.cross_entropy(logits, b["label"]) + token_diversity * overlap).backward()
        optimizer.step()
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    second = module_token_diversity(model.eval(), images)[1]
    assert second.num_pixels == 49
    return second


@pytest.fixture(scope="module")
def trained_second_modules() -> dict[str, TokenDiversity]:
    return {q: _second_module_after_short_training(q) for q in ("tokens", "both")}


@pytest.mark.slow
def test_after_a_short_training_default_queries_keep_module_two_less_collapsed_than_eq_3(
    trained_second_modules: dict[str, TokenDiversity],
) -> None:
    # What the default does after training (method §8): Eq. 3's maps are one map on one pixel,
    # the default's still differ and peak on more pixels.
    eq3, default = trained_second_modules["tokens"], trained_second_modules["both"]
    assert eq3.attention_cosine > 0.95 and default.attention_cosine < 0.9, (eq3, default)
    assert default.distinct_argmax > eq3.distinct_argmax + 1, (eq3, default)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the paper's loss (method §8): training pulls module 2's maps onto "
                   "the same few pixels, whatever the queries; the token-diversity term keeps them apart")
def test_after_training_module_two_tokens_peak_on_at_least_half_as_many_pixels_as_tokens(
    trained_second_modules: dict[str, TokenDiversity],
) -> None:
    default = trained_second_modules["both"]
    assert default.attention_cosine <= 0.6 and default.distinct_argmax >= default.num_tokens / 2, default


@pytest.mark.slow
def test_with_the_token_diversity_term_module_two_tokens_peak_on_at_least_half_as_many_pixels_as_tokens() -> None:
    # The training above, four times as long, on the loss plus the maps' overlap: the bar the
    # paper's loss misses (the strict xfail above).
    kept = _second_module_after_short_training("both", token_diversity=1.0, steps=120)
    assert kept.attention_cosine <= 0.6 and kept.distinct_argmax >= kept.num_tokens / 2, kept


@pytest.mark.slow
def test_competing_tokens_keep_module_two_maps_apart_through_training(
    trained_second_modules: dict[str, TokenDiversity],
) -> None:
    # softmax_over="tokens" (method §8): a logit every token adds cancels, so after the same
    # training module 2's maps overlap less and peak on more pixels than with the paper's softmax.
    default = trained_second_modules["both"]
    competing = _second_module_after_short_training("both", softmax_over="tokens")
    assert competing.attention_cosine < default.attention_cosine - 0.1, (default, competing)
    assert competing.distinct_argmax >= default.distinct_argmax + 2, (default, competing)
    assert competing.distinct_argmax >= competing.num_tokens / 2, competing  # the bar, with no loss term
