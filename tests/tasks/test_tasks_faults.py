"""Pre-emption, resume and non-finite losses."""

import errno
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt.tasks import (
    AtomicCheckpointIO, ClassificationTask, NonFiniteLossError, NonFiniteStateError, PreemptionCheckpoint,
)
from vt.tasks.base import first_non_finite

STEPS_PER_EPOCH = 4  # tiny_data: 16 training images in batches of 4


class SendSignal(L.Callback):
    """Sends ``signum`` to this process after training batch ``step`` (counting from 1)."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            signal.raise_signal(self.signum)


def make_task() -> ClassificationTask:
    # The advanced recipe draws random numbers (stochastic depth, dropout) and keeps an EMA:
    # everything a resumed run must restore.
    return ClassificationTask(
        name="vt_resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="advanced"
    )


def fit(
    tmp_path: Path, max_epochs: int, *callbacks: L.Callback, ckpt_path: str | None = None, num_workers: int = 0
) -> ClassificationTask:
    L.seed_everything(0)
    task = make_task()
    trainer = tiny_trainer(
        max_epochs=max_epochs, deterministic=True, limit_val_batches=1,
        callbacks=[PreemptionCheckpoint(str(tmp_path)), *callbacks],
    )
    trainer.fit(task, tiny_data(recipe="advanced", num_workers=num_workers), ckpt_path=ckpt_path)
    return task


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_a_checkpoint_and_stops(tmp_path: Path, signum: int) -> None:
    with pytest.raises(SIGTERMException):
        fit(tmp_path, 2, SendSignal(signum, step=2))
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tmp_path: Path) -> None:
    # Stopped after the last batch of epoch 0 (before its validation), resumed in a new Trainer
    # and DataLoader: the order of epoch 1 and its augmentation must follow from (seed, epoch).
    # Workers: their random state and the indices they fetch ahead are what a restart loses.
    uninterrupted = fit(tmp_path / "straight", 2, num_workers=2)
    with pytest.raises(SIGTERMException):
        fit(tmp_path / "stopped", 2, SendSignal(signal.SIGTERM, step=STEPS_PER_EPOCH), num_workers=2)
    assert torch.load(tmp_path / "stopped" / "last.ckpt", weights_only=False)["global_step"] == STEPS_PER_EPOCH
    checkpoint = str(tmp_path / "stopped" / "last.ckpt")
    resumed = fit(tmp_path / "stopped", 2, ckpt_path=checkpoint, num_workers=2)
    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_non_finite_loss_stops_before_the_weights_change() -> None:
    task = make_task()
    before = {name: p.detach().clone() for name, p in task.model.named_parameters()}
    trainer = tiny_trainer(max_epochs=1, callbacks=[PoisonBatch()])
    with pytest.raises(NonFiniteLossError, match="non-finite training loss at epoch 0, step 0"):
        trainer.fit(task, tiny_data())
    assert all(torch.equal(before[name], p) for name, p in task.model.named_parameters())


def test_non_finite_loss_writes_no_checkpoint(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(tmp_path, save_last=True)
    trainer = tiny_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[PoisonBatch(), checkpoint])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(make_task(), tiny_data())
    assert not list(tmp_path.iterdir())


class OverflowAdamWSecondMoment(L.Callback):
    """From the second update, the first weight's AdamW second moment is infinite (its update is 0)."""

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        for state in list(optimizer.state.values())[:1]:
            state["exp_avg_sq"].fill_(float("inf"))


def test_non_finite_optimizer_state_stops_the_run() -> None:
    task = ClassificationTask(name="resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="synthetic")
    trainer = tiny_trainer(max_epochs=1, callbacks=[OverflowAdamWSecondMoment()])
    with pytest.raises(NonFiniteStateError, match=r"this process's optimizer_states\.0\.0\.exp_avg_sq"):
        trainer.fit(task, tiny_data())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_first_non_finite_names_the_first_bad_tensor(bad: float) -> None:
    weight = torch.zeros(64)
    weight[37] = bad
    state = {"state_dict": {"fine": torch.ones(3), "weight": weight}, "optimizer_states": [[{"exp_avg": weight.clone()}]]}
    assert first_non_finite(state) == "state_dict.weight"
    weight[37] = 0.0
    assert first_non_finite(state) == "optimizer_states.0.0.exp_avg"
    state["optimizer_states"][0][0]["exp_avg"][37] = 0.0
    assert first_non_finite(state) is None


def test_first_non_finite_is_not_fooled_by_finite_values_whose_sum_overflows() -> None:
    # The screening sum of these is inf; every value is still finite, so nothing is reported.
    state = {"big": torch.full((1000,), 1e37), "half": torch.full((8,), 6e4, dtype=torch.float16), "steps": torch.tensor(3)}
    assert first_non_finite(state) is None
    state["pair"] = [torch.ones(2), torch.tensor([float("inf"), -float("inf")])]  # a sum of NaN, two bad values
    assert first_non_finite(state) == "pair.1"


def test_checkpoint_with_a_non_finite_buffer_is_refused(tmp_path: Path) -> None:
    task = make_task()
    trainer = tiny_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(task, tiny_data(recipe="advanced"))
    next(m for m in task.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var[0] = float("nan")
    with pytest.raises(NonFiniteStateError, match="refused to save a checkpoint at epoch 1, step 1: state_dict.model."):
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert not list(tmp_path.iterdir())


class PoisonBatch(L.Callback):
    """Turns the first training batch into NaNs."""

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: dict, *_: object) -> None:
        batch["image"].fill_(float("nan"))


def test_checkpoint_write_failing_halfway_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    writer.save_checkpoint({"step": torch.tensor(1)}, path)

    def disk_full(obj: object, file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"\x80\x02" * 64)  # the start of a pickle, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        writer.save_checkpoint({"step": torch.tensor(2)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(path)["step"] == 1
