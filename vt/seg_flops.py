"""The paper's segmentation efficiency table (spec §5.2) beside fvcore's counts of our segmenters.

What is counted (``vt.flops.count``, one multiply-add = one FLOP, models in eval mode):

* **neck**: the FPN or VT-FPN module alone on the backbone's C2..C5 (laterals, top-down
  pathway, and the 3×3 convolutions or the tokenizers, transformer and projectors) — the paper's
  "FPN GFLOPs";
* **total**: the whole registered segmenter on one image: backbone (MSRA-style strides, see
  ``vt.models.backbones``), neck, panoptic-FPN semantic head at 128 channels, and the final
  upsampling of the logits to the input size.

Class counts (they only touch the head's 1×1 classifier and final upsampling): LIP 20; COCO-Stuff
91, the stuff-only setting the paper reports (171 classes add 0.9 GFLOPs at 800×1216).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vt.flops import count
from vt.models import create_model
from vt.models.fpn import PyramidNeck, Segmenter


@dataclass(frozen=True)
class SegPaperRow:
    """One row of the paper's VT-FPN table: a registered segmenter at the dataset's input size."""

    dataset: str
    height: int
    width: int
    num_classes: int
    model: str
    total_gflops: float
    neck_gflops: float


PAPER_SEGMENTATION: list[SegPaperRow] = [
    SegPaperRow("COCO-Stuff", 800, 1216, 91, "fpn_resnet50", 159.0, 55.1),
    SegPaperRow("COCO-Stuff", 800, 1216, 91, "vtfpn_resnet50", 113.0, 8.5),
    SegPaperRow("COCO-Stuff", 800, 1216, 91, "fpn_resnet101", 231.0, 55.1),
    SegPaperRow("COCO-Stuff", 800, 1216, 91, "vtfpn_resnet101", 185.0, 8.5),
    SegPaperRow("LIP", 473, 473, 20, "fpn_resnet50", 37.1, 12.8),
    SegPaperRow("LIP", 473, 473, 20, "vtfpn_resnet50", 26.4, 2.0),
    SegPaperRow("LIP", 473, 473, 20, "fpn_resnet101", 54.4, 12.8),
    SegPaperRow("LIP", 473, 473, 20, "vtfpn_resnet101", 43.6, 2.0),
]
"""Spec §5.2. The paper's stated reductions (1.41× / 1.25× total, 6.48× / 6.40× neck) are the
ratios of these figures, so they are derived from them rather than stored."""


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


class _NeckOnMaps(nn.Module):
    """A neck with positional tensors in and out, as fvcore's tracer wants."""

    def __init__(self, neck: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.neck, self.names = neck, names

    def forward(self, *maps: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.neck(dict(zip(self.names, maps))).values())


def feature_shapes(backbone: nn.Module, height: int, width: int) -> dict[str, torch.Size]:
    """Shapes of ``backbone.forward_features`` on one ``height``×``width`` image.

    Runs a meta-device copy: shapes without arithmetic (the real forward of ResNet-101 at
    800×1216 takes seconds on a CPU).
    """
    meta = copy.deepcopy(backbone).to("meta")
    features = meta.forward_features(torch.zeros(1, 3, height, width, device="meta"))
    return {name: f.shape for name, f in features.items()}


def count_neck(neck: PyramidNeck, shapes: dict[str, torch.Size]) -> int:
    """FLOPs of ``neck`` on backbone features of ``shapes`` (name -> ``(1, C, h, w)``)."""
    names = [f.name for f in neck.in_features]
    return count(_NeckOnMaps(neck, names), *(torch.zeros(shapes[n]) for n in names)).flops


def count_segmenter(model: Segmenter, height: int, width: int) -> tuple[int, int]:
    """FLOPs of ``(neck, whole model)`` for one ``(1, 3, height, width)`` image."""
    shapes = feature_shapes(model.backbone, height, width)
    return count_neck(model.neck, shapes), count(model, torch.zeros(1, 3, height, width)).flops


def segmentation_table(datasets: tuple[str, ...] = ("COCO-Stuff", "LIP")) -> list[SegmentationRow]:
    """Every paper row of spec §5.2 for ``datasets`` beside fvcore's count, in the paper's order."""
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
