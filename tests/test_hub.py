"""torch.hub: every registered model loads from a local checkout by its registry name (hubconf.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vt.models import list_models
from vt.models.vt_resnet import VTResNet

REPO = Path(__file__).resolve().parents[1]


def hub_entry_points() -> list[str]:
    """What torch.hub.list reports for a checkout: hubconf's public callables."""
    spec = importlib.util.spec_from_file_location("vt_hubconf", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    return sorted(n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_"))


def test_every_registered_model_is_an_entry_point_and_nothing_else() -> None:
    assert hub_entry_points() == list_models()


def test_hub_load_builds_the_model_with_builder_options() -> None:
    model = torch.hub.load(str(REPO), "vt_resnet18", source="local", num_classes=3, num_tokens=8, token_channels=32)
    assert isinstance(model, VTResNet) and model.fc.out_features == 3
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_hub_load_of_an_unknown_option_is_the_registrys_one_line_error() -> None:
    with pytest.raises(ValueError, match="vt_resnet18 does not take tokens"):
        torch.hub.load(str(REPO), "vt_resnet18", source="local", tokens=8)
