"""A second FLOP counter: PyTorch's ``FlopCounterMode``, in fvcore's convention, cross-checking `vt.flops.count`.

fvcore (`vt.flops.counting`) traces the model with ``torch.jit``, which PyTorch now marks
deprecated; ``torch.utils.flop_counter.FlopCounterMode`` counts the aten ops a forward pass
dispatches, with no tracing. They differ in convention and in coverage:

* **Convention.** FlopCounterMode counts 2 FLOPs per multiply-add, fvcore (and the paper) 1:
  `torch_flops` returns FlopCounterMode's total halved.
* **Counted by both, identically** (op for op): convolutions (``aten.convolution``), linear
  layers (``mm`` / ``addmm``; neither counts the bias), matmuls (``bmm``) and attention (fused
  ``scaled_dot_product_attention`` as its two matmuls: ``vt.flops`` registers that handle for
  fvcore, and PyTorch's formula counts the same).
* **Counted by fvcore only** (`FVCORE_ONLY`): BatchNorm (1 or 2 FLOPs per element, without
  or with an affine), LayerNorm and GroupNorm (5 per element), adaptive average pooling (1 per
  input element), nearest and bilinear upsampling (1 and 4 per output element). FlopCounterMode
  has no formula for normalisation, pooling or resizing.
* **Counted by neither**: element-wise ops (ReLU, residual additions, scaling), softmax,
  max pooling, ``mean``.
* **A gap in FlopCounterMode** (PyTorch 2.14): its registry has the CUDA fused-attention kernels
  but not the CPU one, ``aten._scaled_dot_product_flash_attention_for_cpu``, which `vt.nn.attention`
  runs for tokenizers on channels-last maps; `torch_flops` registers PyTorch's own attention
  formula for it, so that path is counted too.

Hence the pinned agreement (`CrossCheck.agree`, ``tests/test_flop_counters.py``): fvcore's total
less its `FVCORE_ONLY` operators equals FlopCounterMode's total / 2 **exactly**, on the same
deployed copy (eval mode, projector BatchNorms folded) and input. The residual difference of the
totals is those operators (the BatchNorms the ResNet trunk keeps, the VT modules' LayerNorms, the
segmenters' GroupNorms and upsampling); ``python experiments/flops.py --counter torch`` prints
its share for every model. Both counters apply formulas of the tensor shapes, so the agreement
holds at every input size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from vt.flops.counting import deployed, fvcore_analysis

# fvcore operator names (``FlopCountAnalysis.by_operator``) that FlopCounterMode does not count.
FVCORE_ONLY: tuple[str, ...] = (
    "batch_norm", "group_norm", "layer_norm", "instance_norm", "adaptive_avg_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d",
)



def _cpu_sdpa_flop(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args: object,
                   out_shape: object = None, **kwargs: object) -> int:
    """PyTorch's attention formula (its CUDA kernels'), 2 FLOPs per multiply-add, for the CPU kernel."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Ops FlopCounterMode misses in PyTorch 2.14, counted with PyTorch's own formula (module docstring).
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def torch_operator_flops(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """FlopCounterMode's count of ``model(*inputs)`` per aten op (``"aten.convolution"``, ...), halved."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        model(*inputs)
    return {str(op): flops // 2 for op, flops in counter.get_flop_counts().get("Global", {}).items()}


def torch_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of ``model(*inputs)`` by FlopCounterMode in fvcore's convention (one multiply-add = 1).

    Measured on the copy `vt.flops.count` measures (``model`` is left as it is).
    """
    return sum(torch_operator_flops(deployed(model), *inputs).values())


@dataclass(frozen=True)
class CrossCheck:
    """Both counters on one model and input, in fvcore's convention.

    fvcore: fvcore's total; fvcore_by_operator: its per-operator counts; torch: FlopCounterMode's
    total / 2; torch_by_operator: its per-op counts / 2.
    """

    fvcore: int
    fvcore_by_operator: dict[str, int]
    torch: int
    torch_by_operator: dict[str, int]

    @property
    def fvcore_only(self) -> int:
        """FLOPs fvcore counts in the operators FlopCounterMode has no formula for (`FVCORE_ONLY`)."""
        return sum(v for k, v in self.fvcore_by_operator.items() if k in FVCORE_ONLY)

    @property
    def residual(self) -> int:
        """fvcore - FlopCounterMode / 2, less what `FVCORE_ONLY` explains: 0 when they agree."""
        return self.fvcore - self.fvcore_only - self.torch

    @property
    def agree(self) -> bool:
        return self.residual == 0


def cross_check(model: nn.Module, *inputs: torch.Tensor) -> CrossCheck:
    """Count ``model(*inputs)`` with fvcore (as `vt.flops.count` does) and with FlopCounterMode."""
    copy_ = deployed(model)
    with torch.no_grad():
        by_operator = {k: int(v) for k, v in fvcore_analysis(copy_, *inputs).by_operator().items()}
    torch_ops = torch_operator_flops(copy_, *inputs)
    return CrossCheck(sum(by_operator.values()), by_operator, sum(torch_ops.values()), torch_ops)


@functools.lru_cache(maxsize=None)
def _cross_check_named(name: str, height: int, width: int, overrides: tuple[tuple[str, object], ...]) -> CrossCheck:
    from vt.models import create_model

    return cross_check(create_model(name, **dict(overrides)), torch.zeros(1, 3, height, width))


def cross_check_model(name: str, height: int = 224, width: int | None = None, **overrides: object) -> CrossCheck:
    """`cross_check` of the registered model ``name`` (built with ``overrides``) on one image; cached."""
    return _cross_check_named(name, height, width or height, tuple(sorted(overrides.items())))


@dataclass(frozen=True)
class CounterRow:
    """One model of the efficiency tables counted both ways (GFLOPs, fvcore's convention)."""

    model: str
    height: int
    width: int
    check: CrossCheck


def counter_table(task: str = "cls", size: int = 224) -> list[CounterRow]:
    """Every model of the efficiency tables (``task`` "cls": method §5.1 and its ablations at
    ``size``; "seg": method §5.2 at the datasets' sizes) counted by both counters."""
    from vt.flops.paper import ABLATIONS, PAPER_CLASSIFICATION, PAPER_SEGMENTATION

    if task == "cls":
        models = [(r.model, size, size, r.overrides) for r in PAPER_CLASSIFICATION]
        models += [(f"vt_resnet{d}", size, size, tuple(sorted(o.items())))
                   for o in ABLATIONS.values() for d in (18, 34)]
    else:
        models = [(r.model, r.height, r.width, (("num_classes", r.num_classes),)) for r in PAPER_SEGMENTATION]
    rows, seen = [], set()
    for name, h, w, overrides in models:
        if (name, h, w, overrides) in seen:
            continue
        seen.add((name, h, w, overrides))
        label = name + "".join(f" {k}={v}" for k, v in overrides if k != "num_classes")
        rows.append(CounterRow(label, h, w, cross_check_model(name, h, w, **dict(overrides))))
    return rows
