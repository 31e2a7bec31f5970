"""Resuming from checkpoints that an older vt wrote: the EMA's update count, torch's RMSprop state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import vt.tasks.base
from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt.checkpoint import EMA_COUNT
from vt.tasks import ClassificationTask
from vt.tasks.optim import RMSpropTF

STEPS = 2  # per epoch


def fit(recipe: str, ckpt_path: Path | None = None, ema_decay: float | None = None) -> tuple[ClassificationTask, L.Trainer]:
    """One more epoch of ``STEPS`` steps than ``ckpt_path`` holds (one from scratch)."""
    L.seed_everything(0)
    task = ClassificationTask(
        name="vt_resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe=recipe, ema_decay=ema_decay
    )
    epochs = 1 if ckpt_path is None else torch.load(ckpt_path, weights_only=False)["epoch"] + 1
    trainer = tiny_trainer(max_epochs=epochs, limit_train_batches=STEPS, limit_val_batches=1)
    trainer.fit(task, tiny_data(recipe="advanced" if recipe == "advanced" else "standard"), ckpt_path=ckpt_path)
    return task, trainer


def save_old_format(trainer: L.Trainer, path: Path) -> Path:
    """Saves ``trainer``'s checkpoint with the EMA's count as ``vt`` wrote it before `AveragedModel`."""
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint["state_dict"]
    state["ema.num_updates"] = state.pop(EMA_COUNT) - 1
    torch.save(checkpoint, path)
    return path


def test_old_format_checkpoint_resumes_exactly_as_the_current_format(tmp_path: Path) -> None:
    _, trainer = fit("standard", ema_decay=0.9)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    old = save_old_format(trainer, tmp_path / "old.ckpt")
    expected = fit("standard", tmp_path / "new.ckpt", ema_decay=0.9)[0].state_dict()
    actual = fit("standard", old, ema_decay=0.9)[0].state_dict()
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)


def torch_rmsprop(recipe: Any, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """The advanced recipe's optimizer before `RMSpropTF`."""
    return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=math.sqrt(1e-3), momentum=recipe.momentum)


@pytest.fixture
def old_advanced_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An advanced-recipe checkpoint as ``vt`` wrote it with torch's RMSprop and its own EMA class."""
    with monkeypatch.context() as patch:
        patch.setattr(vt.tasks.base, "build_optimizer", torch_rmsprop)
        _, trainer = fit("advanced")
    return save_old_format(trainer, tmp_path / "old.ckpt")


def test_old_advanced_checkpoint_resumes_with_tensorflows_rmsprop(old_advanced_checkpoint: Path) -> None:
    task, trainer = fit("advanced", old_advanced_checkpoint)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, RMSpropTF) and set(optimizer.state[next(task.model.parameters())]) == {"ms", "mom"}


def test_old_advanced_checkpoint_resumes_its_ema_count(old_advanced_checkpoint: Path) -> None:
    task, _ = fit("advanced", old_advanced_checkpoint)
    assert int(task.ema.n_averaged) == 1 + 2 * STEPS
