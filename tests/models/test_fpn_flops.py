"""The paper's segmentation efficiency table (method §5.2) at its real input sizes, with fvcore.

Neck counts need no backbone arithmetic; whole-segmenter counts run ResNet-50/101 at 473×473 or
800×1216 and are marked slow (about 90 s together on 2 CPU cores).
"""

from __future__ import annotations

import functools

import pytest

from vt.flops import PAPER_SEGMENTATION, count_neck, count_segmenter, feature_shapes, segmentation_table
from vt.models import create_model

SIZES = {"LIP": (473, 473), "COCO-Stuff": (800, 1216)}
PAPER_NECK = {(r.dataset, r.model.removesuffix("_resnet50")): r.neck_gflops
              for r in PAPER_SEGMENTATION if r.model.endswith("50")}  # the paper's necks: same on R101
TOLERANCE = 0.02


# Neck counts take a few seconds at 473×473 and more at 800×1216.
DATASETS = ["LIP", pytest.param("COCO-Stuff", marks=pytest.mark.slow)]


@functools.cache
def neck_gflops(dataset: str, kind: str) -> float:
    """GFLOPs of the full-width FPN or VT-FPN neck on ResNet-50's C2..C5 at ``dataset``'s size."""
    model = create_model(f"{kind}_resnet50")
    return count_neck(model.neck, feature_shapes(model.backbone, *SIZES[dataset])) / 1e9


@pytest.fixture(scope="module", params=list(SIZES))
def table(request):
    return segmentation_table((request.param,))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("kind", ["fpn", "vtfpn"])
def test_neck_gflops_within_2_percent_of_the_paper(dataset, kind):
    assert neck_gflops(dataset, kind) == pytest.approx(PAPER_NECK[dataset, kind], rel=TOLERANCE)


@pytest.mark.parametrize("dataset", DATASETS)
def test_vtfpn_neck_reduction_at_least_the_papers(dataset):
    paper = PAPER_NECK[dataset, "fpn"] / PAPER_NECK[dataset, "vtfpn"]  # 6.48× / 6.40×
    assert neck_gflops(dataset, "fpn") / neck_gflops(dataset, "vtfpn") >= paper


@pytest.mark.slow
def test_every_table_figure_within_2_percent_of_the_paper(table):
    off = [(r.model, r.d_neck, r.d_total) for r in table
           if abs(r.d_neck) > TOLERANCE or abs(r.d_total) > TOLERANCE]
    assert off == []


@pytest.mark.slow
def test_total_reductions_within_2_percent_of_the_papers(table):
    off = [(r.model, r.total_reduction, r.paper_total_reduction) for r in table
           if r.total_reduction is not None
           and abs(r.total_reduction / r.paper_total_reduction - 1) > TOLERANCE]
    assert off == []


@pytest.mark.slow
def test_torchvision_strides_miss_the_papers_total():
    # Why the segmenters' backbones put the stride in the first 1×1 (method §5.2): with torchvision's
    # stride in the 3×3, R50 FPN at 473×473 counts 38.6 GFLOPs, +4.0 % against the paper's 37.1.
    _, total = count_segmenter(create_model("fpn_resnet50", stride_in_1x1=False), 473, 473)
    assert total / 1e9 / 37.1 - 1 > TOLERANCE
