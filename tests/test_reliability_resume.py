"""Resuming with changed recipe values (issue 14, item 8): they apply, as config.yaml records them."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from test_cli import CLS, TINY
from vt.cli import main
from vt.tasks import CLASSIFICATION_RECIPES

pytestmark = pytest.mark.usefixtures("in_tmp_path")
RUN = Path("runs/cls/resnet18/version_0")
SHORT = [*TINY, "--trainer.limit_val_batches", "1"]


class RecordLr(L.Callback):
    """Keeps ``(global_step, lr of the first group)`` at the start of every training batch."""

    seen: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, *_: object) -> None:
        RecordLr.seen.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))


def optimizer_settings(checkpoint: Path) -> tuple[list[float], list[float]]:
    """The saved schedule's base learning rates, and the optimizer groups' weight decays."""
    saved = torch.load(checkpoint, weights_only=False)
    groups = saved["optimizer_states"][0]["param_groups"]
    return saved["lr_schedulers"][0]["base_lrs"], [g["weight_decay"] for g in groups]


def test_lr_and_weight_decay_given_on_resume_apply(caplog: pytest.LogCaptureFixture) -> None:
    # Lightning's logger stops propagating to the root when it was imported before any handler
    # existed, which depends on test order: listen on it directly.
    lightning_log = logging.getLogger("lightning.pytorch")
    lightning_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    try:
        _resume_with_new_settings()
    finally:
        lightning_log.removeHandler(caplog.handler)
    assert "resumed with this run's settings (the checkpoint's replaced): peak lr" in caplog.text


def _resume_with_new_settings() -> None:
    RecordLr.seen.clear()
    assert main("classification", CLS, [*SHORT, "--trainer.max_epochs", "1", "--model.lr", "0.4"]) == 0
    base, decays = optimizer_settings(RUN / "checkpoints" / "last.ckpt")
    resume = ["--config", str(RUN / "config.yaml"), "--ckpt_path", "last", "--trainer.max_epochs", "2",
              "--model.lr", "0.04", "--model.weight_decay", "0.001",
              "--trainer.callbacks", f"{__name__}.RecordLr"]
    assert main("classification", CLS, resume) == 0
    assert yaml.safe_load((RUN / "config.yaml").read_text())["model"]["lr"] == 0.04
    new_base, new_decays = optimizer_settings(RUN / "checkpoints" / "last.ckpt")
    assert new_base == pytest.approx([b / 10 for b in base])  # the peak rate follows --model.lr
    # The first resumed step trains at the new peak times the schedule's factor at that step
    # (step 4 of 8: the resume doubled the run's length).
    step, lr = RecordLr.seen[0]
    assert step == 4 and lr == pytest.approx(new_base[0] * CLASSIFICATION_RECIPES["synthetic"].lr_factor(4 / 8))
    assert set(new_decays) <= {0.0, 0.001} and 0.001 in new_decays and new_decays != decays


def test_recipe_with_another_optimizer_on_resume_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("classification", CLS, [*SHORT, "--trainer.max_epochs", "1", "--model.recipe", "standard"]) == 0
    capsys.readouterr()
    config = (RUN / "config.yaml").read_text()
    resume = ["--config", str(RUN / "config.yaml"), "--ckpt_path", "last", "--trainer.max_epochs", "2",
              "--model.recipe", "synthetic"]
    assert main("classification", CLS, resume) == 2
    assert (RUN / "config.yaml").read_text() == config
    err = capsys.readouterr().err
    assert err == (
        "error: the checkpoint holds the sgd state of --model.recipe standard, which adamw (--model.recipe "
        "synthetic) cannot continue: resume with --model.recipe standard, or leave out --ckpt_path to train "
        "from the start\n"
    )
