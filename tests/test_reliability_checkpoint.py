"""Damaged, foreign and wrong-model checkpoints give one-line errors (issue 14, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vt
from vt.checkpoint import MODEL_KEY, check_checkpoint
from vt.models import create_model


@pytest.fixture
def resnet18_ckpt(tmp_path: Path) -> Path:
    """A minimal vt training checkpoint of resnet18 with 4 classes."""
    model = create_model("resnet18", num_classes=4)
    path = tmp_path / "resnet18.ckpt"
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
         MODEL_KEY: {"name": "resnet18", "args": {"num_classes": 4}, "class_names": None}},
        path,
    )
    return path


def _damaged(kind: str, good: Path) -> Path:
    path = good.with_name(f"{kind}.ckpt")
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "text":
        path.write_text("hello\n")
    else:
        path.write_bytes(b"")
    return path


DAMAGE = {
    "truncated": r"truncated\.ckpt cannot be read \(RuntimeError: .*\): it is truncated, damaged or not a PyTorch file",
    "text": r"text\.ckpt is not a PyTorch file \(it starts with b'hello\\n'\)",
    "empty": r"empty\.ckpt is empty \(0 bytes",
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_load_model_of_a_damaged_file_is_a_one_line_value_error(kind: str, resnet18_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=DAMAGE[kind]) as info:
        vt.load_model(_damaged(kind, resnet18_ckpt))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", DAMAGE)
def test_load_model_by_name_of_a_damaged_file_is_a_one_line_value_error(kind: str, resnet18_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=DAMAGE[kind]):
        vt.load_model(_damaged(kind, resnet18_ckpt), name="resnet18", num_classes=4)


def test_load_model_of_another_models_checkpoint_names_both(resnet18_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"is a checkpoint of resnet18, not vt_resnet18; leave out the name"):
        vt.load_model(resnet18_ckpt, name="vt_resnet18", num_classes=4)


def test_load_model_of_a_plain_state_dict_that_does_not_fit_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    torch.save(create_model("resnet18", num_classes=4).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit vt_resnet18: \d+ weights missing \(e\.g\. ") as info:
        vt.load_model(path, name="vt_resnet18", num_classes=4)
    assert "\n" not in str(info.value)


def test_check_checkpoint_refuses_another_model_and_names_the_flag(resnet18_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"is of resnet18, not vt_resnet18: pass --model\.name resnet18"):
        check_checkpoint(resnet18_ckpt, "vt_resnet18")


def test_check_checkpoint_names_a_tensor_of_another_shape(resnet18_ckpt: Path) -> None:
    expected = {f"model.{k}": v for k, v in create_model("resnet18", num_classes=5).state_dict().items()}
    with pytest.raises(ValueError, match=r"2 tensors differ in shape \(e\.g\. model\.fc\.weight: \(4, 512\) saved"):
        check_checkpoint(resnet18_ckpt, "resnet18", expected)


def test_check_checkpoint_refuses_a_file_without_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        check_checkpoint(path, "resnet18")


def test_check_checkpoint_returns_a_fitting_checkpoint(resnet18_ckpt: Path) -> None:
    expected = {f"model.{k}": v for k, v in create_model("resnet18", num_classes=4).state_dict().items()}
    assert check_checkpoint(resnet18_ckpt, "resnet18", expected)[MODEL_KEY]["name"] == "resnet18"
