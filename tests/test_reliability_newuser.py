"""Cases from the new-user pass of issue 14 (docs/reliability.md, "New-user pass") that needed a fix."""

from __future__ import annotations

import csv
import errno
import inspect
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import vt
from vt.cli import main as cli_main
from vt.predict import PredictionWriter
from vt.predict import main as predict_main
from vt.run_dir import remove_unused_versions, resolve_run_dir

from test_cli import CLS


def test_load_model_of_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    # A run directory is the natural first guess; "does not exist" would be wrong about it.
    with pytest.raises(FileNotFoundError, match=r"is a directory, not a checkpoint file; pass a \.ckpt in it"):
        vt.load_model(str(tmp_path))


def test_create_model_is_reachable_from_the_package() -> None:
    # `vt.load_model` is at the top level; its counterpart for a fresh model is expected beside it.
    model = vt.create_model("resnet18", num_classes=3)
    assert model.fc.out_features == 3


def test_csv_header_matches_the_rows_when_top_k_exceeds_the_classes(tmp_path: Path) -> None:
    # --top-k 50 on a 2-class model: each row holds 2 (class, prob) pairs, so must the header.
    writer = PredictionWriter(tmp_path, ["a"], ["a.jpg"], ["x", "y"], top_k=50, overlay=False, attention=False)
    writer.rows = [{"path": "a.jpg", "top_k": [{"class": "x", "probability": 0.6}, {"class": "y", "probability": 0.4}]}]
    writer.on_predict_end(SimpleNamespace(global_rank=0, world_size=1), None)  # type: ignore[arg-type]
    with open(tmp_path / "predictions.csv", newline="") as file:
        header, row = list(csv.reader(file))
    assert header == ["path", "class_1", "prob_1", "class_2", "prob_2"]
    assert len(row) == len(header)


def test_a_failed_first_run_leaves_no_empty_model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `cls.py --backbone vt_resnet19` (a typo) used to leave an empty runs/cls/vt_resnet19/ behind.
    monkeypatch.chdir(tmp_path)
    kept = tmp_path / "runs" / "cls" / "resnet18" / "version_0"
    kept.mkdir(parents=True)
    (kept / "config.yaml").write_text("{}\n")
    failed = resolve_run_dir("cls", "vt_resnet19", None, None, 1)
    again = resolve_run_dir("cls", "resnet18", None, None, 1)
    remove_unused_versions()
    assert not Path(failed).parent.exists() and not Path(again).exists()
    assert kept.is_dir()  # another model's run, and the folders holding it, stay


def test_claiming_a_version_survives_its_model_folder_being_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process's cleanup may remove the empty model folder between its mkdir and ours.
    monkeypatch.chdir(tmp_path)
    real_mkdir = os.mkdir

    def mkdir_after_removal(path: str | os.PathLike[str], *args: object) -> None:
        if Path(path).name.startswith("version_"):
            monkeypatch.setattr(os, "mkdir", real_mkdir)
            shutil.rmtree(Path(path).parent)  # the model folder vanishes just before our version folder is made
        real_mkdir(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir_after_removal)
    assert Path(resolve_run_dir("cls", "resnet18", None, None, 1)).is_dir()
    remove_unused_versions()


def test_hub_takes_pretrained_false_and_refuses_true_in_one_line() -> None:
    # torch.hub callers pass pretrained= out of habit (torchvision's entry points take it).
    repo = str(Path(__file__).resolve().parents[1])
    model = torch.hub.load(repo, "resnet18", source="local", pretrained=False, num_classes=3)
    assert model.fc.out_features == 3
    with pytest.raises(ValueError, match=r"^there are no published resnet18 weights; pass pretrained=False"):
        torch.hub.load(repo, "resnet18", source="local", pretrained=True)
    assert "pretrained" in inspect.signature(_hub_entry(repo)).parameters


def _hub_entry(repo: str) -> object:
    """hubconf's resnet18 entry point itself (its signature is what torch.hub.help and IDEs show)."""
    return torch.hub._load_entry_from_hubconf(torch.hub._import_module("hubconf", str(Path(repo) / "hubconf.py")), "resnet18")


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_run_dir_that_cannot_be_written_is_one_line_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # `--run_dir /sys/run` (or on a read-only disk) was a PermissionError traceback from inside fit.
    (tmp_path / "afile").write_text("x")
    run_dir = tmp_path / "afile" / "run" if where == "under_a_file" else tmp_path / "new" / "run"
    if where == "read_only":
        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    reason = "Not a directory" if where == "under_a_file" else "Read-only file system"
    with pytest.raises(ValueError, match=rf"^--run_dir {run_dir} cannot be written \(.*{reason}\); pass a directory you can write"):
        resolve_run_dir("cls", "resnet18", str(run_dir), None, 1)
    assert not (tmp_path / "new").exists()  # nothing created by the check


def test_predict_out_dir_that_cannot_be_written_is_one_line_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was found only when the predictions were written, after the model ran on every image.
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "out"
    assert predict_main(["--ckpt_path", str(tmp_path / "missing.ckpt"), str(tmp_path), "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: --out-dir {out} cannot be written ({tmp_path / 'afile'}: Not a directory); "
                                       "pass a directory you can write (created if missing)\n")


@pytest.mark.parametrize(("text", "message"), [
    ("{{{: [ not yaml\n", r"is not valid YAML at line 1, column 4 \(.+\); fix the file"),
    ("- a\n- b\n", r"holds a list, not a mapping of options \(trainer:, model:, data:, \.\.\.\)"),
])
def test_config_that_is_not_a_yaml_mapping_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    # jsonargparse's own line ("while parsing a flow node ...") named neither the file nor the flag.
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert cli_main("classification", CLS, ["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: --config {re.escape(str(config))} {message}.*\n", err), err
