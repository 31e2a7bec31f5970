import pytest
import torch
from torch import nn

from vt.tasks.optim import RMSpropTF
from vt.tasks.recipes import (
    CLASSIFICATION_RECIPES,
    SEGMENTATION_RECIPES,
    Recipe,
    build_optimizer,
    parameter_groups,
    resolve_recipe,
)

STANDARD = CLASSIFICATION_RECIPES["standard"]
ADVANCED = CLASSIFICATION_RECIPES["advanced"]


def test_standard_schedule_divides_by_ten_every_30_of_90_epochs() -> None:
    factors = [STANDARD.lr_factor(epoch / 90) for epoch in (0, 29.9, 30, 59.9, 60, 89.9)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_schedule_stretches_to_the_run_length() -> None:
    # A 6-epoch run of the 90-epoch recipe divides the rate after epochs 2 and 4.
    assert [STANDARD.lr_factor(epoch / 6) for epoch in (1.9, 2, 4)] == pytest.approx([1, 0.1, 0.01])


def test_advanced_schedule_warms_up_from_001_to_016_then_decays_per_epoch() -> None:
    peak = ADVANCED.lr
    assert peak * ADVANCED.lr_factor(0) == pytest.approx(0.01)
    assert peak * ADVANCED.lr_factor(5 / 400) == pytest.approx(0.16)
    assert ADVANCED.lr_factor(7.5 / 400) == pytest.approx(0.9875**2)


def test_fpn_schedule_is_detectron2_1x() -> None:
    recipe = SEGMENTATION_RECIPES["fpn_1x"]
    assert recipe.lr_factor(0) == pytest.approx(0.001)
    assert [recipe.lr_factor(i / 90_000) for i in (1000, 59_999, 60_000, 80_000)] == pytest.approx(
        [1, 1, 0.1, 0.01]
    )


def test_peak_lr_scales_linearly_with_the_global_batch() -> None:
    assert STANDARD.peak_lr(512) == pytest.approx(0.2)


def test_resolve_recipe_overrides_only_given_fields() -> None:
    recipe = resolve_recipe(CLASSIFICATION_RECIPES, "advanced", lr=0.3, dropout=None)
    assert (recipe.lr, recipe.dropout) == (0.3, ADVANCED.dropout)


def test_unknown_recipe_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="choose one of standard, advanced, synthetic"):
        resolve_recipe(CLASSIFICATION_RECIPES, "fancy")


def test_norms_and_biases_get_no_weight_decay() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    groups = parameter_groups(model, weight_decay=1e-4, norm_bias_decay=False)
    shapes = {g["weight_decay"]: [tuple(p.shape) for p in g["params"]] for g in groups}
    assert shapes == {1e-4: [(4, 3, 3, 3)], 0.0: [(4,), (4,), (4,)]}


def test_advanced_recipe_uses_tensorflows_rmsprop() -> None:
    optimizer = build_optimizer(ADVANCED, [{"params": [nn.Parameter(torch.zeros(1))]}], lr=0.1)
    assert isinstance(optimizer, RMSpropTF)


def test_recipe_is_frozen() -> None:
    with pytest.raises(AttributeError):
        STANDARD.lr = 1.0  # type: ignore[misc]
    assert isinstance(STANDARD, Recipe)


def test_synthetic_recipe_warms_up_then_decays_along_a_half_cosine() -> None:
    recipe = CLASSIFICATION_RECIPES["synthetic"]
    assert [recipe.lr_factor(p) for p in (0, 0.1, 0.55, 1)] == pytest.approx([0.01, 1, 0.5, 0])


def test_synthetic_recipe_uses_adamw() -> None:
    recipe = CLASSIFICATION_RECIPES["synthetic"]
    optimizer = build_optimizer(recipe, [{"params": [nn.Parameter(torch.zeros(1))]}], lr=0.1)
    assert isinstance(optimizer, torch.optim.AdamW)
