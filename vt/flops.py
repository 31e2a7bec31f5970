"""FLOP and parameter counting with fvcore, and the paper's reference figures (spec §5).

Convention: **one fused multiply-add is one FLOP**, as in the paper and as fvcore counts
convolutions, linear layers and matmuls. fvcore also counts BatchNorm/LayerNorm/GroupNorm (2 FLOPs
per element in eval mode for affine BN, 5 for LayerNorm/GroupNorm), bilinear/nearest upsampling and
adaptive average pooling. It skips element-wise ops (ReLU, residual additions, softmax, scaling),
max pooling and ``mean``; :func:`count` returns what it skipped. We register one extra handle: the
fused ``scaled_dot_product_attention`` counts as its two matmuls (``q kᵀ`` and ``attn v``), exactly
what the explicit path would count, so the fused kernel never hides attention FLOPs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

COUNTING_NOTE = (
    "FLOPs: fvcore, one multiply-add = one FLOP; counts conv, linear, matmul and attention "
    "(fused SDPA = its two matmuls), BatchNorm/LayerNorm/GroupNorm, upsampling, adaptive pooling; "
    "skips element-wise ops (ReLU, residual adds, softmax), max-pool and mean. Models in eval mode."
)


def _shape(value: Any) -> list[int]:
    return value.type().sizes()


def _sdpa_flop(inputs: list[Any], outputs: list[Any]) -> int:
    q, k, v = (_shape(x) for x in inputs[:3])
    rows = math.prod(q[:-1])
    return rows * k[-2] * q[-1] + rows * k[-2] * v[-1]


@dataclass(frozen=True)
class Count:
    """FLOPs (multiply-adds), parameters, and the ops fvcore skipped (name -> occurrences)."""

    flops: int
    params: int
    skipped: dict[str, int]

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count(model: nn.Module, *inputs: torch.Tensor) -> Count:
    """Count ``model(*inputs)`` in eval mode with fvcore (no gradients, no side effects on mode)."""
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = (
                FlopCountAnalysis(model, inputs)
                .set_op_handle("aten::scaled_dot_product_attention", _sdpa_flop)
                .unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False)
            )
            flops = int(analysis.total())
            skipped = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return Count(flops, params, skipped)


def count_image_model(model: nn.Module, height: int = 224, width: int | None = None) -> Count:
    """Count a model on one ``(1, 3, height, width)`` image."""
    return count(model, torch.zeros(1, 3, height, width or height))


@functools.lru_cache(maxsize=None)
def _count_named(name: str, height: int, width: int, overrides: tuple[tuple[str, object], ...]) -> Count:
    from vt.models import create_model

    return count_image_model(create_model(name, **dict(overrides)), height, width)


def count_model(name: str, height: int = 224, width: int | None = None, **overrides: object) -> Count:
    """Count the registered model ``name`` (built with ``overrides``); cached per arguments."""
    return _count_named(name, height, width or height, tuple(sorted(overrides.items())))


@dataclass(frozen=True)
class PaperRow:
    """One reference row of the paper: what it measured (spec §5.1) and where it comes from."""

    model: str
    source: str
    gflops: float
    mparams: float
    overrides: tuple[tuple[str, object], ...] = ()


def _table8_vt_r34() -> tuple[tuple[str, object], ...]:
    from vt.models.resnet import VT_RESNET34_TABLE8

    return tuple(sorted(VT_RESNET34_TABLE8.items()))


# Spec §5.1. VT-R18/34 have two configurations in the paper (Table 2 and Table 8).
PAPER_CLASSIFICATION: list[PaperRow] = [
    PaperRow("resnet18", "paper", 1.814, 11.7),
    PaperRow("resnet34", "paper", 3.664, 21.8),
    PaperRow("resnet50", "paper", 4.089, 25.5),
    PaperRow("resnet101", "paper", 7.802, 44.4),
    PaperRow("vt_resnet18", "Table 2", 1.579, 11.6),
    PaperRow("vt_resnet18", "Table 8", 1.569, 11.7),
    PaperRow("vt_resnet34", "Table 2", 3.299, 21.8),
    PaperRow("vt_resnet34", "Table 8", 3.236, 19.2),
    PaperRow("vt_resnet34", "Table 8", 3.236, 19.2, _table8_vt_r34()),
    PaperRow("vt_resnet50", "Table 8", 3.412, 21.4),
    PaperRow("vt_resnet101", "Table 8", 7.129, 41.5),
]

# Spec §5.1, Table 1: FLOPs of the replaced stage, ResNet / VT, and of the whole network.
PAPER_STAGE_REDUCTION: dict[int, tuple[float, float]] = {
    18: (2.4, 1.14), 34: (5.0, 1.16), 50: (6.1, 1.20), 101: (6.9, 1.09),
}

# Spec §5.1 ablations (default recipe): variant -> overrides, and the paper's (MFLOPs, M params)
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
    """Every paper row of spec §5.1 beside fvcore's count of the registered model at ``size``."""
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
    are what the VT stage runs inside the classifier (its last projector skipped).
    """
    from vt.models import create_model

    rows = []
    for depth, (paper_stage, paper_total) in PAPER_STAGE_REDUCTION.items():
        resnet, vt = create_model(f"resnet{depth}"), create_model(f"vt_resnet{depth}")
        c4 = torch.zeros(1, resnet.feature_info[2].channels, size // 16, size // 16)
        r = count(resnet.layer4, c4)
        v = count(_TokensOnly(vt.layer4), c4)
        rows.append(StageComparison(
            depth, r.gflops, v.gflops, r.mparams, v.mparams,
            count_model(f"resnet{depth}", size).flops / count_model(f"vt_resnet{depth}", size).flops,
            paper_stage, paper_total,
        ))
    return rows


class _TokensOnly(nn.Module):
    """A VT stage as the classifier runs it: tokens out, last projector skipped."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(x, project_last=False).tokens


@dataclass(frozen=True)
class AblationRow:
    variant: str
    depth: int
    mflops: float
    mparams: float
    paper_mflops: float
    paper_mparams: float


def ablation_table(size: int = 224, depths: tuple[int, ...] = (18, 34)) -> list[AblationRow]:
    """Spec §5.1's ablations, each built from the one parametrised VT-ResNet by overrides."""
    rows = []
    for variant, overrides in ABLATIONS.items():
        for depth in depths:
            c = count_model(f"vt_resnet{depth}", size, **overrides)
            pf, pp = PAPER_ABLATIONS[variant][depth]
            rows.append(AblationRow(variant, depth, c.flops / 1e6, c.mparams, pf, pp))
    return rows
