"""Inputs every model family takes or refuses alike (issue 14): empty batches, wrong dtypes."""

from __future__ import annotations

import pytest
import torch

from vt.models import create_model

# One of each family: ResNet, VT-ResNet, FPN, VT-FPN (the segmenters at their smallest depth).
FAMILIES = ["resnet18", "vt_resnet18", "fpn_resnet50", "vtfpn_resnet50"]


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {name: create_model(name, num_classes=3).eval() for name in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES)
def test_empty_batch_gives_an_empty_output(name: str, models: dict[str, torch.nn.Module], one_thread: None) -> None:
    with torch.no_grad():
        out = models[name](torch.zeros(0, 3, 32, 32))
    assert out.shape == ((0, 3) if "fpn" not in name else (0, 3, 32, 32))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize(
    ("dtype", "message"),
    [
        (torch.uint8, r"expects float images normalised .* got torch\.uint8; convert with x\.float\(\) / 255"),
        (torch.float64, r"has torch\.float32 weights but got torch\.float64 images; pass x\.to\(torch\.float32\)"),
    ],
)
def test_wrong_input_dtype_is_one_clear_error(
    name: str, dtype: torch.dtype, message: str, models: dict[str, torch.nn.Module]
) -> None:
    with pytest.raises(ValueError, match=f"^{name} {message}"):
        models[name](torch.zeros(1, 3, 32, 32, dtype=dtype))


def test_autocast_input_of_another_float_dtype_still_runs(models: dict[str, torch.nn.Module], one_thread: None) -> None:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert models["vt_resnet18"](torch.zeros(1, 3, 32, 32, dtype=torch.bfloat16)).shape == (1, 3)
