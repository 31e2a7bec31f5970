"""Exported models (vt/export.py, experiments/export.py): ONNX, TorchScript, torch.export.

One tiny model per family (resnet, vt_resnet, fpn, vtfpn: reduced VT and neck widths, the
ResNet trunks are full size); each exported file is run at two batch sizes and two image sizes
(one odd and non-square) and compared with eager PyTorch: max |exported - eager| / max |eager|
must stay within vt.export.TOLERANCE (1e-4).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from vt.export import TOLERANCE, build_model, check_export, export_model, load_exported, min_export_size
from vt.models import create_model

REPO = Path(__file__).resolve().parents[1]
SIZE = 64  # traced example and first checked size; check_shapes adds 49x35
TINY: dict[str, dict[str, object]] = {
    "resnet18": {},
    "vt_resnet18": dict(token_channels=64, qk_channels=32, ffn_channels=32),
    "fpn_resnet50": dict(out_channels=64, head_channels=64),  # GroupNorm(32) needs 2 channels a group
    "vtfpn_resnet50": dict(out_channels=64, head_channels=64, token_channels=64, qk_channels=16,
                           ffn_channels=16, projector_groups=4),
}
FAMILIES = list(TINY)


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one intra-op thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=5, **TINY[name]).eval() for name in FAMILIES}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


def _assert_agrees(model: nn.Module, path: Path, fmt: str) -> None:
    rows = check_export(model, path, fmt, SIZE)  # type: ignore[arg-type]
    assert {r.shape[0] for r in rows} == {1, 3} and len({r.shape[2:] for r in rows}) == 2
    assert max(r.error for r in rows) <= TOLERANCE, rows


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_graph_has_dynamic_axes_and_matches_eager_in_onnxruntime(
    models: dict[str, nn.Module], out_dir: Path, name: str
) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = export_model(models[name], out_dir / f"{name}.onnx", "onnx", SIZE)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    dims = session.get_outputs()[0].shape
    assert dims[0] == "batch" and dims[2:] == (["height", "width"] if "fpn" in name else [])
    _assert_agrees(models[name], path, "onnx")


@pytest.mark.parametrize("name", [
    "resnet18", "vt_resnet18",
    pytest.param("fpn_resnet50", marks=pytest.mark.slow), pytest.param("vtfpn_resnet50", marks=pytest.mark.slow),
])
def test_torchscript_file_matches_eager(models: dict[str, nn.Module], out_dir: Path, name: str) -> None:
    path = export_model(models[name], out_dir / f"{name}.pt", "torchscript", SIZE)
    _assert_agrees(models[name], path, "torchscript")


@pytest.fixture(scope="module")
def exported_vt(models: dict[str, nn.Module], out_dir: Path) -> Path:
    """The tiny VT-ResNet through torch.export (the slowest exporter: ~5 s of CPU)."""
    return export_model(models["vt_resnet18"], out_dir / "vt_resnet18.pt2", "exported", SIZE)


def test_exported_program_matches_eager_after_torch_export_load(
    models: dict[str, nn.Module], exported_vt: Path
) -> None:
    _assert_agrees(models["vt_resnet18"], exported_vt, "exported")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "fpn_resnet50", "vtfpn_resnet50"])
def test_exported_program_of_every_family_matches_eager(models: dict[str, nn.Module], out_dir: Path, name: str) -> None:
    path = export_model(models[name], out_dir / f"{name}.pt2", "exported", SIZE)
    _assert_agrees(models[name], path, "exported")


def test_exported_program_refuses_a_size_below_its_range(models: dict[str, nn.Module], exported_vt: Path) -> None:
    model = models["vt_resnet18"]
    run = load_exported(exported_vt, "exported")
    least = min_export_size(model)
    assert run(torch.randn(2, 3, least, least + 5)).shape == (2, 5)
    with pytest.raises(Exception, match="Guard failed|height|width|s\\d+"):
        run(torch.randn(2, 3, least - 1, least))


def test_min_export_size_is_one_past_a_single_pixel_coarsest_map(models: dict[str, nn.Module]) -> None:
    assert {n: min_export_size(m) for n, m in models.items()} == {
        "resnet18": 33, "vt_resnet18": 17, "fpn_resnet50": 33, "vtfpn_resnet50": 33,
    }


@pytest.mark.slow
def test_dynamo_onnx_exporter_also_matches_eager(models: dict[str, nn.Module], out_dir: Path) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    path = export_model(models["vt_resnet18"], out_dir / "dynamo.onnx", "onnx", SIZE, onnx_exporter="dynamo")
    _assert_agrees(models["vt_resnet18"], path, "onnx")


def test_export_refuses_a_size_the_model_cannot_take(models: dict[str, nn.Module], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"height and width must be >= 17; pass --image-size 17") as e:
        export_model(models["vt_resnet18"], tmp_path / "x.onnx", "onnx", 16)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "x.onnx").exists()


# experiments/export.py


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_script", REPO / "experiments" / "export.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


def _vt_checkpoint(path: Path, name: str, **args: object) -> Path:
    """A minimal vt training checkpoint (vt/checkpoint.py's layout) of a freshly built model."""
    model = create_model(name, **args)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"vt_model": {"name": name, "args": args, "class_names": None}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def vt_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _vt_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", "vt_resnet18", num_classes=3,
                          **TINY["vt_resnet18"])


def test_script_exports_a_checkpoint_and_reports_the_agreement(
    script: ModuleType, vt_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "model.onnx"
    code = script.main(["--checkpoint", str(vt_ckpt), "--format", "onnx", "--out", str(out), "--image-size", "64"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "vt_resnet18" in printed and "output logits (batch, classes)" in printed
    assert "agrees within 1e-04" in printed


def _one_line_error(script: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_script_unknown_model_is_one_line(script: ModuleType, tmp_path: Path, capsys) -> None:
    err = _one_line_error(script, ["--model", "vt_resnet19", "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
                          capsys)
    assert "unknown model 'vt_resnet19'" in err


def test_script_too_small_size_is_one_line(script: ModuleType, vt_ckpt: Path, tmp_path: Path, capsys) -> None:
    err = _one_line_error(script, ["--checkpoint", str(vt_ckpt), "--image-size", "12", "--format", "exported",
                                   "--out", str(tmp_path / "m.pt2")], capsys)
    assert "must be >= 17" in err


def test_script_unwritable_out_is_one_line(script: ModuleType, vt_ckpt: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    err = _one_line_error(script, ["--checkpoint", str(vt_ckpt), "--format", "onnx",
                                   "--out", str(tmp_path / "file" / "m.onnx")], capsys)
    assert "cannot write --out" in err


def test_script_checkpoint_of_another_model_is_one_line(script: ModuleType, vt_ckpt: Path, tmp_path: Path,
                                                        capsys) -> None:
    err = _one_line_error(script, ["--model", "resnet18", "--checkpoint", str(vt_ckpt), "--format", "onnx",
                                   "--out", str(tmp_path / "m.onnx")], capsys)
    assert "holds a vt_resnet18, not a resnet18" in err


def test_script_state_dict_of_another_model_is_one_line(script: ModuleType, tmp_path: Path, capsys) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(create_model("resnet18", num_classes=3).state_dict(), path)
    err = _one_line_error(script, ["--model", "resnet34", "--num-classes", "3", "--checkpoint", str(path),
                                   "--format", "onnx", "--out", str(tmp_path / "m.onnx")], capsys)
    assert "does not fit resnet34" in err


def test_build_model_loads_a_plain_state_dict_by_name(tmp_path: Path) -> None:
    source = create_model("resnet18", num_classes=3)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model, name = build_model("resnet18", tmp_path / "r18.pth", num_classes=3)
    assert name == "resnet18"
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_build_model_refuses_overrides_a_checkpoint_contradicts(vt_ckpt: Path) -> None:
    with pytest.raises(ValueError, match="was trained with num_classes=3; drop num_classes"):
        build_model(None, vt_ckpt, num_classes=10)


def test_build_model_refuses_an_option_a_checkpoint_was_trained_without(vt_ckpt: Path) -> None:
    with pytest.raises(ValueError, match="was trained with the default num_tokens; drop num_tokens"):
        build_model(None, vt_ckpt, options={"num_tokens": 8})
