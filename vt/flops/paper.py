"""The paper's efficiency figures: classification (method §5.1) and segmentation (method §5.2).

Reference data only; `vt.flops.tables` puts our counts beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vt.models import VT_RESNET34_TABLE8


@dataclass(frozen=True)
class PaperRow:
    """One reference row of the paper: what it measured (method §5.1) and where it comes from."""

    model: str
    source: str
    gflops: float
    mparams: float
    overrides: tuple[tuple[str, object], ...] = ()


# Method §5.1. VT-R18/34 have two configurations in the paper (Table 2 and Table 8).
PAPER_CLASSIFICATION: list[PaperRow] = [
    PaperRow("resnet18", "paper", 1.814, 11.7),
    PaperRow("resnet34", "paper", 3.664, 21.8),
    PaperRow("resnet50", "paper", 4.089, 25.5),
    PaperRow("resnet101", "paper", 7.802, 44.4),
    PaperRow("vt_resnet18", "Table 2", 1.579, 11.6),
    PaperRow("vt_resnet18", "Table 8", 1.569, 11.7),
    PaperRow("vt_resnet34", "Table 2", 3.299, 21.8),
    PaperRow("vt_resnet34", "Table 8", 3.236, 19.2),
    PaperRow("vt_resnet34", "Table 8", 3.236, 19.2, tuple(sorted(VT_RESNET34_TABLE8.items()))),
    PaperRow("vt_resnet50", "Table 8", 3.412, 21.4),
    PaperRow("vt_resnet101", "Table 8", 7.129, 41.5),
]

# Method §5.1, Table 1: FLOPs of the replaced stage, ResNet / VT, and of the whole network.
PAPER_STAGE_REDUCTION: dict[int, tuple[float, float]] = {
    18: (2.4, 1.14), 34: (5.0, 1.16), 50: (6.1, 1.20), 101: (6.9, 1.09),
}

# Method §5.1 ablations (default recipe): variant -> overrides, and the paper's (MFLOPs, M params)
# for VT-R18 and VT-R34.
ABLATIONS: dict[str, dict[str, object]] = {
    "full model": {},
    "filter tokenizer in every module": {"tokenizer": "filter"},
    "no transformer": {"relation": "none"},
    "pooling tokenizer": {"tokenizer": "pooling"},
    "32 tokens": {"num_tokens": 32},
    "64 tokens": {"num_tokens": 64},
    "no projector": {"projector": False},
}
PAPER_ABLATIONS: dict[str, dict[int, tuple[float, float]]] = {
    "full model": {18: (1579, 11.6), 34: (3299, 21.8)},
    "filter tokenizer in every module": {18: (1564, 11.1), 34: (3369, 20.7)},
    "no transformer": {18: (1528, 8.5), 34: (3222, 17.1)},
    "pooling tokenizer": {18: (1550, 11.0), 34: (3246, 20.6)},
    "32 tokens": {18: (1711, 11.6), 34: (3514, 21.8)},
    "64 tokens": {18: (1979, 11.6), 34: (3951, 21.8)},
    "no projector": {18: (1497, 9.3), 34: (3158, 17.3)},
}


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
"""Method §5.2. The paper's stated reductions (1.41× / 1.25× total, 6.48× / 6.40× neck) are the
ratios of these figures, so they are derived from them rather than stored.

Class counts only touch the head's 1×1 classifier and final upsampling: LIP 20; COCO-Stuff 91,
the stuff-only setting the paper reports (``count_segmenter(create_model(name, num_classes=171),
800, 1216)`` counts the 171-class variant)."""
