"""FLOP and parameter counting with fvcore (method §5).

Convention: **one fused multiply-add is one FLOP**, as in the paper and as fvcore counts
convolutions, linear layers and matmuls. fvcore also counts BatchNorm/LayerNorm/GroupNorm (2 FLOPs
per element in eval mode for affine BN, 5 for LayerNorm/GroupNorm), bilinear/nearest upsampling and
adaptive average pooling. It skips element-wise ops (ReLU, residual additions, softmax, scaling),
max pooling and ``mean``; :func:`count` returns what it skipped. We register one extra handle: the
fused ``scaled_dot_product_attention`` counts as its two matmuls (``q kᵀ`` and ``attn v``), exactly
what the explicit path would count, so the fused kernel never hides attention FLOPs.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vt.flops.parts import NeckOnMaps
from vt.nn import fold_batchnorm

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


def deployed(model: nn.Module) -> nn.Module:
    """The copy every counter measures: eval mode, projector BatchNorms folded (``model`` untouched)."""
    return fold_batchnorm(copy.deepcopy(model).eval())


def fvcore_analysis(model: nn.Module, *inputs: torch.Tensor) -> Any:
    """fvcore's lazy count of ``model(*inputs)`` (a ``FlopCountAnalysis``), with fused attention
    counted like its explicit matmuls and the warnings about skipped ops off."""
    from fvcore.nn import FlopCountAnalysis

    return (
        FlopCountAnalysis(model, inputs)
        .set_op_handle("aten::scaled_dot_product_attention", _sdpa_flop)
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )


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
    """Count ``model(*inputs)`` with fvcore as deployed, on a copy (``model`` is left as it is).

    The copy is in eval mode with its projectors' BatchNorms folded (`vt.nn.fold_batchnorm`);
    the parameters are ``model``'s.
    """
    with torch.no_grad():
        analysis = fvcore_analysis(deployed(model), *inputs)
        flops = int(analysis.total())
        skipped = dict(analysis.unsupported_ops())
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


def feature_shapes(backbone: nn.Module, height: int, width: int) -> dict[str, torch.Size]:
    """Shapes of ``backbone.forward_levels`` on one ``height``×``width`` image.

    Runs a meta-device copy: shapes without arithmetic (a real forward of ResNet-101 at the
    paper's segmentation sizes is slow on a CPU).
    """
    meta = copy.deepcopy(backbone).to("meta")
    features = meta.forward_levels(torch.zeros(1, 3, height, width, device="meta"))
    return {name: f.shape for name, f in features.items()}


def count_neck(neck: nn.Module, shapes: dict[str, torch.Size]) -> int:
    """FLOPs of an FPN or VT-FPN ``neck`` on backbone features of ``shapes`` (name -> ``(1, C, h, w)``).

    The neck alone: laterals, top-down pathway, and the 3×3 convolutions or the tokenizers,
    transformer and projectors — the paper's "FPN GFLOPs" (method §5.2).
    """
    wrapped = NeckOnMaps(neck)
    return count(wrapped, *(torch.zeros(shapes[n]) for n in wrapped.names)).flops


def count_segmenter(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    """FLOPs of ``(neck, whole model)`` of a segmenter for one ``(1, 3, height, width)`` image.

    The whole model is the backbone (MSRA-style strides, see ``vt.models.backbones``), the neck,
    the panoptic-FPN semantic head and the final upsampling of the logits to the input size.
    """
    shapes = feature_shapes(model.backbone, height, width)
    return count_neck(model.neck, shapes), count(model, torch.zeros(1, 3, height, width)).flops
