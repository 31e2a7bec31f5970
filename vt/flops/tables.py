"""Our fvcore counts beside the paper's figures (method §5.1, §5.2), and the text tables.

``python experiments/flops.py [--ablations | --task seg]`` prints every table built here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vt.flops.counting import count, count_model, count_segmenter
from vt.flops.paper import (
    ABLATIONS,
    PAPER_ABLATIONS,
    PAPER_CLASSIFICATION,
    PAPER_SEGMENTATION,
    PAPER_STAGE_REDUCTION,
)
from vt.flops.parts import TokensOnly
from vt.models import create_model

TABLE_FORMATS = ("markdown", "csv")


def format_table(header: list[str], rows: list[list[str]], fmt: str = "markdown") -> str:
    """``rows`` under ``header`` as a markdown table or as comma-separated lines (``fmt``)."""
    if fmt == "csv":
        return "\n".join(",".join(r) for r in [header, *rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


@dataclass(frozen=True)
class Comparison:
    """Our count of ``model`` beside one paper row; ``d_*`` are relative differences (ours/paper - 1)."""

    model: str
    source: str
    gflops: float
    mparams: float
    paper_gflops: float
    paper_mparams: float

    @property
    def d_flops(self) -> float:
        return self.gflops / self.paper_gflops - 1

    @property
    def d_params(self) -> float:
        return self.mparams / self.paper_mparams - 1


def classification_table(size: int = 224) -> list[Comparison]:
    """Every paper row of method §5.1 beside fvcore's count of the registered model at ``size``."""
    rows = []
    for ref in PAPER_CLASSIFICATION:
        c = count_model(ref.model, size, **dict(ref.overrides))
        name = ref.model + (" + VT_RESNET34_TABLE8" if ref.overrides else "")
        rows.append(Comparison(name, ref.source, c.gflops, c.mparams, ref.gflops, ref.mparams))
    return rows


@dataclass(frozen=True)
class StageComparison:
    """The replaced ResNet stage against the VT stage (plus head), and whole-network FLOPs."""

    depth: int
    resnet_stage_gflops: float
    vt_stage_gflops: float
    resnet_stage_mparams: float
    vt_stage_mparams: float
    total_reduction: float
    paper_stage_reduction: float
    paper_total_reduction: float

    @property
    def stage_reduction(self) -> float:
        return self.resnet_stage_gflops / self.vt_stage_gflops


def stage_table(size: int = 224) -> list[StageComparison]:
    """Paper Table 1: FLOPs/params of ResNet's last stage vs the VT stage that replaces it.

    Both are counted on the real stride-16 map of a ``size``×``size`` image; the stage's FLOPs
    are what the VT stage runs inside the classifier (`TokensOnly`: its last projector skipped).
    """
    rows = []
    for depth, (paper_stage, paper_total) in PAPER_STAGE_REDUCTION.items():
        resnet, vt = create_model(f"resnet{depth}"), create_model(f"vt_resnet{depth}")
        c4 = torch.zeros(1, resnet.level_info[2].channels, size // 16, size // 16)
        r = count(resnet.layer4, c4)
        v = count(TokensOnly(vt.layer4), c4)
        rows.append(StageComparison(
            depth, r.gflops, v.gflops, r.mparams, v.mparams,
            count_model(f"resnet{depth}", size).flops / count_model(f"vt_resnet{depth}", size).flops,
            paper_stage, paper_total,
        ))
    return rows


@dataclass(frozen=True)
class AblationRow:
    variant: str
    depth: int
    mflops: float
    mparams: float
    paper_mflops: float
    paper_mparams: float


def ablation_table(size: int = 224, depths: tuple[int, ...] = (18, 34)) -> list[AblationRow]:
    """Method §5.1's ablations, each built from the one parametrised VT-ResNet by overrides."""
    rows = []
    for variant, overrides in ABLATIONS.items():
        for depth in depths:
            c = count_model(f"vt_resnet{depth}", size, **overrides)
            pf, pp = PAPER_ABLATIONS[variant][depth]
            rows.append(AblationRow(variant, depth, c.flops / 1e6, c.mparams, pf, pp))
    return rows


@dataclass(frozen=True)
class SegmentationRow:
    """Our counts of one paper row. ``d_*`` are relative differences (ours/paper - 1).

    ``*_reduction`` are FPN / VT-FPN for the same backbone and input (``None`` on FPN rows).
    """

    dataset: str
    height: int
    width: int
    model: str
    neck_gflops: float
    paper_neck_gflops: float
    total_gflops: float
    paper_total_gflops: float
    neck_reduction: float | None = None
    paper_neck_reduction: float | None = None
    total_reduction: float | None = None
    paper_total_reduction: float | None = None

    @property
    def d_neck(self) -> float:
        return self.neck_gflops / self.paper_neck_gflops - 1

    @property
    def d_total(self) -> float:
        return self.total_gflops / self.paper_total_gflops - 1


def segmentation_table(datasets: tuple[str, ...] = ("COCO-Stuff", "LIP")) -> list[SegmentationRow]:
    """Every paper row of method §5.2 for ``datasets`` beside fvcore's count, in the paper's order.

    Neck and total as `count_segmenter` counts them, at the dataset's input size and classes.
    """
    counts = {}
    refs = [r for r in PAPER_SEGMENTATION if r.dataset in datasets]
    for ref in refs:
        model = create_model(ref.model, num_classes=ref.num_classes)
        counts[ref.dataset, ref.model] = count_segmenter(model, ref.height, ref.width)
    papers = {(r.dataset, r.model): r for r in refs}
    rows = []
    for ref in refs:
        neck, total = counts[ref.dataset, ref.model]
        reductions: dict[str, float] = {}
        if ref.model.startswith("vt"):
            baseline = ref.model.removeprefix("vt")
            fpn_neck, fpn_total = counts[ref.dataset, baseline]
            paper = papers[ref.dataset, baseline]
            reductions = dict(
                neck_reduction=fpn_neck / neck,
                paper_neck_reduction=paper.neck_gflops / ref.neck_gflops,
                total_reduction=fpn_total / total,
                paper_total_reduction=paper.total_gflops / ref.total_gflops,
            )
        rows.append(SegmentationRow(
            ref.dataset, ref.height, ref.width, ref.model, neck / 1e9, ref.neck_gflops,
            total / 1e9, ref.total_gflops, **reductions,
        ))
    return rows
