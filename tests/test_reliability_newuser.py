"""Cases from the new-user pass of issue 14 (docs/reliability.md, "New-user pass") that needed a fix."""

from __future__ import annotations

import csv
import errno
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

import vt
from vt.cli import _one_line
from vt.cli import main as cli_main
from vt.data import BadSampleError
from vt.predict import PredictionWriter
from vt.predict import main as predict_main
from vt.run_dir import remove_unused_versions, resolve_run_dir

from test_cli import CLS, TINY


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


class CtrlCOnce(L.Callback):
    """Presses Ctrl-C (SIGINT to this process) once, at the start of the first training batch, and
    prints whether Python's own handler is back for a second one."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int) -> None:
        if i == 0:
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        print(f"second Ctrl-C interrupts: {signal.getsignal(signal.SIGINT) is signal.default_int_handler}")


@pytest.mark.slow
def test_ctrl_c_saves_last_ckpt_and_exits_130(tmp_path: Path) -> None:
    # Ctrl-C used to exit 1 with no last.ckpt: the steps done were lost (SIGTERM saved them).
    run_dir = tmp_path / "run"
    environment = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "experiments/cls.py", *TINY, "--trainer.max_epochs", "1", "--run_dir", str(run_dir),
         "--trainer.callbacks+=test_reliability_newuser.CtrlCOnce"],
        cwd=Path(__file__).resolve().parents[1], env=environment, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 130, output[-3000:]
    assert "interrupted: last.ckpt saved; resume with --ckpt_path last" in result.stderr
    assert "second Ctrl-C interrupts: True" in result.stdout
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 1  # stopped after the step it was in
    assert isinstance(vt.load_model(str(checkpoint)), torch.nn.Module)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--model.lr", "-1", "--model.lr must be a positive number, got -1.0"),
    ("--model.lr", "0", "--model.lr must be a positive number, got 0.0"),
    ("--model.weight_decay", "-0.1", "--model.weight_decay must be at least 0, got -0.1"),
    ("--model.ema_decay", "1", r"--model.ema_decay must be in \[0, 1\), got 1.0"),
    ("--model.label_smoothing", "1.5", r"--model.label_smoothing must be in \[0, 1\), got 1.5"),
    ("--model.dropout", "-0.5", r"--model.dropout must be in \[0, 1\), got -0.5"),
    ("--data.image_size", "big", r"--data.image_size: Expected a <class 'int'>. Got value: big"),
])
def test_bad_rates_and_values_name_their_flag(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # lr -1 was torch's "Invalid learning rate: -0.125" at the first step; `big` named only `data`.
    assert cli_main("classification", CLS, ["--backbone", "resnet18", flag, value]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: {message}\n", err), err


def test_image_size_below_the_model_minimum_names_the_flag_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    # It failed only at the sanity check, after the model summary, with "resize or pad the images".
    assert cli_main("classification", CLS, ["--backbone", "vt_resnet18", "--data.image_size", "8"]) == 2
    assert capsys.readouterr().err == ("error: --data.image_size 8 is too small for vt_resnet18: it needs images of "
                                       "at least 16x16; pass --data.image_size 16 or more\n")


@pytest.mark.parametrize(("message", "end"), [
    ("mask m.png has label values [77] outside 0..19 (and 255 = ignore)", "to skip bad samples"),
    ("cannot read image a.jpg: image file is truncated", "to skip unreadable samples"),
])
def test_bad_sample_hint_says_unreadable_only_when_it_was(message: str, end: str) -> None:
    # A mask read fine but holding wrong labels is not "unreadable".
    assert _one_line(BadSampleError(message)) == f"{message}; fix or remove it, or pass --data.skip_bad true {end}"
