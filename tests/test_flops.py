"""The paper's efficiency tables (method §5.1): tolerances that pin our models to the paper.

Counting the classifiers is slow; only the text formatter's tests are fast.

Tolerances: FLOPs within 2 % of the paper on every row, params within 2 % (VT-R18/34, against
one of the paper's two configurations) or 3 % (VT-R50/101, whose paper rows disagree, method §5.4).
VT-R50's FLOPs are the one row no faithful design reaches (method §5.4): pinned at +2.7 %.
"""

from __future__ import annotations

import pytest

from vt.flops import ablation_table, classification_table, format_table, stage_table

# (model, paper row) -> (FLOPs tolerance, params tolerance)
TOLERANCES = {
    ("resnet18", "paper"): (0.02, 0.02),
    ("resnet34", "paper"): (0.02, 0.02),
    ("resnet50", "paper"): (0.02, 0.02),
    ("resnet101", "paper"): (0.02, 0.02),
    ("vt_resnet18", "Table 2"): (0.02, 0.02),
    ("vt_resnet18", "Table 8"): (0.02, 0.02),
    ("vt_resnet34", "Table 2"): (0.02, 0.02),
    ("vt_resnet34 + VT_RESNET34_TABLE8", "Table 8"): (0.02, 0.02),
    ("vt_resnet50", "Table 8"): (0.028, 0.03),
    ("vt_resnet101", "Table 8"): (0.02, 0.03),
}


@pytest.fixture(scope="module")
def table():
    return {(r.model, r.source): r for r in classification_table()}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(TOLERANCES))
def test_classifier_matches_paper_row(table, key: tuple[str, str]) -> None:
    row, (tol_f, tol_p) = table[key], TOLERANCES[key]
    assert abs(row.d_flops) <= tol_f, f"{key}: FLOPs {row.gflops:.3f} vs {row.paper_gflops}"
    assert abs(row.d_params) <= tol_p, f"{key}: params {row.mparams:.2f} vs {row.paper_mparams}"


@pytest.mark.slow
def test_vt_resnet50_flops_stay_pinned_at_their_known_excess(table) -> None:
    """The tight row: +2.7 % FLOPs; a change that moves it further from the paper fails here."""
    assert table[("vt_resnet50", "Table 8")].d_flops == pytest.approx(0.027, abs=0.002)


@pytest.mark.slow
def test_vt_stages_are_cheaper_than_the_stages_they_replace() -> None:
    for row in stage_table():
        assert row.stage_reduction > 2.0 and row.total_reduction > 1.05
        assert row.vt_stage_mparams < row.resnet_stage_mparams


@pytest.mark.slow
def test_ablation_variants_move_the_way_the_paper_says() -> None:
    rows = {(r.variant, r.depth): r for r in ablation_table(depths=(18,))}
    full = rows[("full model", 18)]
    for variant in ("no transformer", "no projector", "pooling tokenizer"):
        assert rows[(variant, 18)].mflops < full.mflops and rows[(variant, 18)].mparams < full.mparams
    assert full.mflops < rows[("32 tokens", 18)].mflops < rows[("64 tokens", 18)].mflops
    for r in rows.values():
        assert abs(r.mflops / r.paper_mflops - 1) < 0.05, r


def test_format_table_writes_markdown_with_a_header_rule() -> None:
    assert format_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_format_table_writes_csv_lines() -> None:
    assert format_table(["a", "b"], [["1", "2"]], "csv") == "a,b\n1,2"
