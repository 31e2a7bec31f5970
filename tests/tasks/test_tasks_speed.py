"""The task's speed options: channels-last, ``torch.compile`` and mixed precision change no checkpoint.

A channels-last or compiled run saves the checkpoint an eager NCHW run saves (same keys, weights
`vt.load_model` and ``ckpt_path`` read back exactly); the batches reach the model in the model's
memory format; ``bf16-mixed`` trains on a CPU. The fast compiled tests trace with the
``aot_eager`` backend (Dynamo and AOTAutograd, no code generation); the Inductor one runs with ``VT_INDUCTOR_TESTS=1``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn

import vt
from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt.tasks import ClassificationTask, SegmentationTask

STEPS = 2
MODEL = "vt_resnet18"


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    """Every compiled test compiles the same ``forward`` code objects: start below the recompile limit."""
    torch._dynamo.reset()


@pytest.fixture
def aot_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """``nn.Module.compile`` with the ``aot_eager`` backend unless told otherwise (fast, no C++ build)."""
    compile_in_place = nn.Module.compile

    @functools.wraps(compile_in_place)
    def with_aot_eager(module: nn.Module, *args: Any, **kwargs: Any) -> None:
        compile_in_place(module, *args, **({"backend": "aot_eager"} | kwargs))

    monkeypatch.setattr(nn.Module, "compile", with_aot_eager)


class Forwards(L.Callback):
    """Records, for every forward of the task's model, whether its input was channels-last and its output's dtype."""

    def __init__(self) -> None:
        self.channels_last: list[bool] = []
        self.dtypes: list[torch.dtype] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.model.register_forward_hook(self._record)

    def _record(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.channels_last.append(args[0].is_contiguous(memory_format=torch.channels_last))
        self.dtypes.append(output.dtype)


class StartWeights(L.Callback):
    """The task's weights when training starts (after ``ckpt_path`` was restored)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = {k: v.clone() for k, v in pl_module.state_dict().items()}


def fit(path: Path, ckpt_path: Path | None = None, callbacks: list[L.Callback] | None = None,
        **task_args: Any) -> tuple[ClassificationTask, L.Trainer]:
    """``STEPS`` steps of SGD (one epoch more than ``ckpt_path`` holds), then a checkpoint at ``path``."""
    L.seed_everything(0)
    task = ClassificationTask(
        name=MODEL, num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="standard", **task_args
    )
    epochs = 1 if ckpt_path is None else torch.load(ckpt_path, weights_only=False)["epoch"] + 1
    trainer = tiny_trainer(max_epochs=epochs, limit_train_batches=STEPS, limit_val_batches=1, callbacks=callbacks)
    trainer.fit(task, tiny_data(), ckpt_path=ckpt_path)
    trainer.save_checkpoint(path)
    return task, trainer


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture
def eager_checkpoint(tmp_path: Path) -> Path:
    fit(tmp_path / "eager.ckpt", channels_last=False, ema_decay=0.9)
    return tmp_path / "eager.ckpt"


def check_reads_like_eager(path: Path, eager: Path) -> None:
    """Same keys as the eager checkpoint, close weights, and `vt.load_model` gets them exactly."""
    saved, reference = state(path), state(eager)
    assert saved.keys() == reference.keys()
    for key in reference:
        # Two steps from the same start; the formats only reorder floating-point sums.
        torch.testing.assert_close(saved[key], reference[key], rtol=1e-3, atol=1e-4, msg=key)
    loaded = vt.load_model(path).state_dict()
    assert all(torch.equal(loaded[k], saved[f"ema.module.{k}"]) for k in loaded)


def check_resumes(path: Path, tmp_path: Path, **task_args: Any) -> None:
    """``ckpt_path`` restores every saved tensor and continues the step count."""
    start = StartWeights()
    _, trainer = fit(tmp_path / "resumed.ckpt", ckpt_path=path, callbacks=[start], **task_args)
    saved = state(path)
    assert trainer.global_step == 2 * STEPS
    assert start.state.keys() == saved.keys() and all(torch.equal(start.state[k], saved[k]) for k in saved)


def test_channels_last_is_the_default() -> None:
    task = ClassificationTask(name="resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="standard")
    assert task.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_checkpoint_reads_like_an_eager_one(tmp_path: Path, eager_checkpoint: Path) -> None:
    fit(tmp_path / "cl.ckpt", channels_last=True, ema_decay=0.9)
    check_reads_like_eager(tmp_path / "cl.ckpt", eager_checkpoint)


def test_channels_last_checkpoint_resumes(tmp_path: Path) -> None:
    fit(tmp_path / "cl.ckpt", channels_last=True, ema_decay=0.9)
    check_resumes(tmp_path / "cl.ckpt", tmp_path, channels_last=True, ema_decay=0.9)


@pytest.mark.slow
def test_compiled_checkpoint_reads_like_an_eager_one(tmp_path: Path, eager_checkpoint: Path, aot_eager: None) -> None:
    fit(tmp_path / "compiled.ckpt", channels_last=True, compile=True, ema_decay=0.9)
    check_reads_like_eager(tmp_path / "compiled.ckpt", eager_checkpoint)


@pytest.mark.slow
def test_compiled_checkpoint_resumes(tmp_path: Path, aot_eager: None) -> None:
    fit(tmp_path / "compiled.ckpt", channels_last=True, compile=True, ema_decay=0.9)
    check_resumes(tmp_path / "compiled.ckpt", tmp_path, channels_last=True, compile=True, ema_decay=0.9)


@pytest.mark.slow
def test_compiled_fit_compiles_once_per_mode(tmp_path: Path, aot_eager: None) -> None:
    """Static shapes and full batches: each compiled frame once for training and once for evaluation.

    The frames are the model's ``forward`` and its channels-last input hook; a recompilation at
    every step would add two graphs at the second step.
    """
    counters = torch._dynamo.utils.counters
    counters.clear()
    fit(tmp_path / "compiled.ckpt", compile=True)
    assert counters["stats"]["unique_graphs"] == 4


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("VT_INDUCTOR_TESTS") != "1",
    reason="Inductor compiles C++ for minutes on 2 cores; VT_INDUCTOR_TESTS=1 pytest runs it",
)
def test_inductor_compiled_checkpoint_reads_like_an_eager_one(tmp_path: Path, eager_checkpoint: Path) -> None:
    fit(tmp_path / "compiled.ckpt", channels_last=True, compile=True, ema_decay=0.9)
    check_reads_like_eager(tmp_path / "compiled.ckpt", eager_checkpoint)


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "nchw"])
def test_batches_reach_the_model_in_its_memory_format(tmp_path: Path, channels_last: bool) -> None:
    formats = Forwards()
    fit(tmp_path / "run.ckpt", callbacks=[formats], channels_last=channels_last)
    assert len(formats.channels_last) == STEPS + 1 and set(formats.channels_last) == {channels_last}


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_bf16_mixed_fast_dev_run_on_cpu(task: str) -> None:
    if task == "classification":
        module: L.LightningModule = ClassificationTask(
            name=MODEL, num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="standard"
        )
    else:
        module = SegmentationTask(
            name="vtfpn_resnet50", num_classes=NUM_CLASSES + 1, batch_size=BATCH_SIZE,
            options={"out_channels": 32, "head_channels": 32, "token_channels": 64},
        )
    forwards = Forwards()
    trainer = tiny_trainer(fast_dev_run=1, precision="bf16-mixed", callbacks=[forwards])
    trainer.fit(module, tiny_data())
    assert forwards.dtypes and set(forwards.dtypes) == {torch.bfloat16}
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/loss"])
