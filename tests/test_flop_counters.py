"""Two FLOP counters agree: fvcore (traced with torch.jit) and PyTorch's FlopCounterMode.

The pinned agreement (vt/flops/torch_counter.py): fvcore's total less the ops only it counts
(`FVCORE_ONLY`: norms, adaptive pooling, upsampling) equals FlopCounterMode's total / 2, exactly,
for every model of the efficiency tables. A change in either counter (fvcore's tracer breaking
under a new torch, a new formula in FlopCounterMode) or a model op only one of them sees fails here.
Both count formulas of tensor shapes, so the real models are checked at 64×64 (one 2×2 C5 map for
the ResNets), where a forward is cheap; one full-size row is checked at 224 (slow).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vt.flops import ABLATIONS, FVCORE_ONLY, PAPER_CLASSIFICATION, PAPER_SEGMENTATION, count, cross_check, torch_flops
from vt.flops.torch_counter import cross_check_model
from vt.models import create_model

SMALL = 64
# Every model of the efficiency tables: classification rows (method §5.1), the ablations (on
# VT-R18; VT-R34 differs only in depth) and the segmenters (method §5.2) at the dataset's classes.
TABLE_MODELS = sorted(
    {(r.model, r.overrides) for r in PAPER_CLASSIFICATION}
    | {("vt_resnet18", tuple(sorted(o.items()))) for o in ABLATIONS.values()}
    | {(r.model, (("num_classes", r.num_classes),)) for r in PAPER_SEGMENTATION if r.dataset == "LIP"},
    key=str,
)
# What FlopCounterMode counts on these models, by aten op: the matmul-like ops fvcore counts too.
TORCH_OPS = {"aten.convolution", "aten.mm", "aten.addmm", "aten.bmm",
             "aten._scaled_dot_product_flash_attention_for_cpu"}
SHARED_FVCORE_OPS = {"conv", "linear", "matmul", "scaled_dot_product_attention"}


def _param(entry: tuple[str, tuple]) -> object:
    """The ResNet-101 models take 3-6 s each on a busy 2-core CPU: slow."""
    name, overrides = entry
    marks = [pytest.mark.slow] if name.endswith("101") else []
    return pytest.param(entry, marks=marks, id=name + "".join(f"-{k}={v}" for k, v in overrides))


@pytest.mark.parametrize("entry", [_param(e) for e in TABLE_MODELS])
def test_counters_agree_on_every_table_model_after_the_factor_2_and_fvcore_only_ops(one_thread, entry) -> None:
    name, overrides = entry
    check = cross_check_model(name, SMALL, **dict(overrides))
    assert check.residual == 0, (check.fvcore_by_operator, check.torch_by_operator)
    assert check.fvcore_only > 0  # every model has norms the torch counter skips: the residual is real
    assert set(check.fvcore_by_operator) <= SHARED_FVCORE_OPS | set(FVCORE_ONLY), check.fvcore_by_operator
    assert set(check.torch_by_operator) <= TORCH_OPS, check.torch_by_operator


def test_counters_agree_op_for_op_on_convolutions_and_matmuls(one_thread) -> None:
    check = cross_check_model("vt_resnet18", SMALL)
    fv, pt = check.fvcore_by_operator, check.torch_by_operator
    assert fv["conv"] == pt["aten.convolution"]
    assert fv["linear"] + fv["matmul"] == pt["aten.mm"] + pt["aten.addmm"] + pt["aten.bmm"]


def test_the_fvcore_only_share_is_what_fvcore_counts_for_norms_and_pooling(one_thread) -> None:
    """ResNet-18: the residual is exactly its BatchNorms (2 FLOPs an element) and the global pool."""
    check = cross_check_model("resnet18", SMALL)
    assert set(check.fvcore_by_operator) - {"conv", "linear"} == {"batch_norm", "adaptive_avg_pool2d"}
    assert check.fvcore_by_operator["adaptive_avg_pool2d"] == 512 * 2 * 2  # one per C5 element
    assert check.fvcore - check.torch == check.fvcore_only


def test_cross_check_counts_what_vt_flops_count_counts(one_thread) -> None:
    model = create_model("vt_resnet18", num_tokens=8, token_channels=64)
    x = torch.zeros(1, 3, SMALL, SMALL)
    assert cross_check(model, x).fvcore == count(model, x).flops


def test_torch_counter_counts_the_cpu_fused_attention_kernel(one_thread) -> None:
    """FlopCounterMode (torch 2.14) has no formula for the CPU flash kernel; ours adds PyTorch's."""

    class Attention(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 1, 16, 32), torch.randn(2, 1, 100, 32), torch.randn(2, 1, 100, 48)
    assert torch_flops(Attention(), q, k, v) == 2 * 16 * 100 * (32 + 48)


def test_channels_last_models_hit_the_fused_kernel_and_still_agree(one_thread) -> None:
    model = create_model("vt_resnet18").eval().to(memory_format=torch.channels_last)
    check = cross_check(model, torch.zeros(1, 3, SMALL, SMALL).to(memory_format=torch.channels_last))
    assert "aten._scaled_dot_product_flash_attention_for_cpu" in check.torch_by_operator
    assert check.residual == 0


@pytest.mark.slow
def test_counters_agree_at_the_paper_size(one_thread) -> None:
    check = cross_check_model("vt_resnet50", 224)
    assert check.residual == 0
    assert 0 < check.fvcore_only / check.fvcore < 0.01
