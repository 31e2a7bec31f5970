"""The fit | validate | test subcommands of experiments/cls.py and seg.py (vt/cli.py, vt/evaluate.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from vt.cli import expand_aliases, main
from vt.evaluate import find_checkpoint, markdown

from test_cli import CLS, SEG, TINY, script

SEG_LISTS = script("seg").LISTS


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logged_validation(run: Path) -> dict[str, float]:
    """The val/* metrics fit logged for its last epoch (csv/version_0/metrics.csv)."""
    with open(run / "csv" / "version_0" / "metrics.csv") as file:
        rows = [r for r in csv.DictReader(file) if r.get("val/acc1")]
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


def test_fit_is_the_default_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    printed = []
    for argv in (["--backbone", "vt_resnet18", "--print_config"], ["fit", "--backbone", "vt_resnet18", "--print_config"]):
        with pytest.raises(SystemExit):
            main("classification", CLS, argv)
        printed.append(yaml.safe_load(capsys.readouterr().out))
    assert printed[0] == printed[1] and printed[0]["model"]["name"] == "vt_resnet18"


def test_list_alias_takes_every_value_up_to_the_next_flag() -> None:
    argv = ["--scales", "0.5", "1.0", "1.5", "--tta", "flip", "--model", "fpn_resnet50"]
    assert expand_aliases(argv, SEG, SEG_LISTS) == [
        "--model.test_scales", "[0.5, 1.0, 1.5]", "--model.tta", "flip", "--model.name", "fpn_resnet50"
    ]


@pytest.mark.parametrize(("argv", "message"), [
    (["validate"], "error: this subcommand scores a checkpoint: pass --ckpt_path PATH (or --ckpt_path last)"),
    (["test", "--ckpt_path", "nowhere.ckpt"], "error: --ckpt_path nowhere.ckpt: no such checkpoint file"),
    (["validate", "--ckpt_path", "last"], "error: --ckpt_path last: no last.ckpt of any model under runs/cls"),
])
def test_evaluation_without_a_checkpoint_is_a_one_line_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main("classification", CLS, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_ckpt_path_last_is_the_newest_of_the_task_or_of_the_run_dir(tmp_path: Path) -> None:
    old = tmp_path / "runs/cls/resnet18/version_0/checkpoints/last.ckpt"
    new = tmp_path / "runs/cls/vt_resnet18/version_3/checkpoints/last.ckpt"
    for path, when in ((old, 1000), (new, 2000)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (when, when))
    assert find_checkpoint("last", "cls", None, None).resolve() == new
    assert find_checkpoint("last", "cls", "resnet18", None).resolve() == old
    assert find_checkpoint("last", "cls", None, str(old.parents[1])) == old


@pytest.mark.slow
def test_validate_reproduces_fit_and_scores_ema_and_raw_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("classification", CLS, [*TINY, "--trainer.max_epochs", "1", "--model.ema_decay", "0.5"]) == 0
    run = Path("runs/cls/resnet18/version_0")
    checkpoint, config = run / "checkpoints" / "last.ckpt", run / "config.yaml"
    before = {p: digest(p) for p in (checkpoint, config)}
    capsys.readouterr()

    assert main("classification", CLS, ["validate", "--ckpt_path", "last"]) == 0
    out = capsys.readouterr().out
    results = json.loads((run / "checkpoints" / "last.validate.json").read_text())
    ema, raw = results["weights"]["ema"]["metrics"], results["weights"]["raw"]["metrics"]
    # fit validated the EMA weights at the end of epoch 0, just before it saved last.ckpt
    assert ema == pytest.approx(logged_validation(run), abs=1e-6) and results["epoch"] == 0
    assert raw["val/loss"] != pytest.approx(ema["val/loss"])
    per_class = results["weights"]["ema"]["per_class"]["accuracy"]
    assert set(per_class) == {"disk", "square", "triangle", "star"}  # by class name, 2 val images each
    assert sum(per_class.values()) / 4 == pytest.approx(ema["val/acc1"])
    assert "| val/acc1 |" in out and "last.validate.md" in out
    # nothing of the run changed, and no new run was started
    assert {p: digest(p) for p in before} == before and not Path("runs/cls/resnet18/version_1").exists()

    # a checkpoint without its run: model and data from the hyper-parameters it saved
    Path("lone").mkdir()
    Path("lone/copy.ckpt").write_bytes(checkpoint.read_bytes())
    assert main("classification", CLS, ["validate", "--ckpt_path", "lone/copy.ckpt"]) == 0
    alone = json.loads(Path("lone/copy.validate.json").read_text())["weights"]
    assert alone["ema"]["metrics"] == pytest.approx(ema) and alone["raw"]["metrics"] == pytest.approx(raw)

    assert main("classification", CLS, ["test", "--ckpt_path", str(checkpoint)]) == 0
    tested = json.loads((run / "checkpoints" / "last.test.json").read_text())
    assert tested["weights"]["ema"]["metrics"]["test/acc1"] == pytest.approx(ema["val/acc1"])
    table = (run / "checkpoints" / "last.test.md").read_text()
    assert "| test/acc5 |" in table and "| disk |" in table and "centre crop" not in tested["protocol"]


def test_markdown_has_one_column_per_set_of_weights() -> None:
    results = {
        "subcommand": "test", "checkpoint": "c.ckpt", "protocol": "p",
        "weights": {"ema": {"metrics": {"test/acc1": 0.5}, "per_class": {"accuracy": {"disk": 1.0}}},
                    "raw": {"metrics": {"test/acc1": 0.25}, "per_class": {"accuracy": {"disk": 0.0}}}},
    }
    table = markdown(results)
    assert "| metric | ema | raw |" in table and "| test/acc1 | 0.5000 | 0.2500 |" in table
    assert "| disk | 1.0000 | 0.0000 |" in table


@pytest.mark.slow
def test_segmentation_test_with_flip_writes_per_class_iou(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model", "fpn_resnet50", "--model.options", "{out_channels: 32, head_channels: 32}",
            "--data.image_size", "64", *TINY[4:], "--trainer.max_epochs", "1"]
    assert main("segmentation", SEG, argv, SEG_LISTS) == 0
    capsys.readouterr()
    assert main("segmentation", SEG, ["test", "--ckpt_path", "last", "--tta", "flip", "--scales", "1.0", "1.5"],
                SEG_LISTS) == 0
    results = json.loads(next(Path("runs/seg").glob("*/*/checkpoints/last.test.json")).read_text())
    assert results["protocol"].endswith("scales 1 1.5; flip")
    scored = results["weights"]["model"]
    assert {"test/mIoU", "test/mAcc", "test/aAcc"} <= set(scored["metrics"])
    assert "background" in scored["per_class"]["IoU"]
