"""SIGTERM under DDP (two CPU processes, gloo): every process saves and stops, none hangs (issue 14, item 2).

A signal handler that runs a collective (Lightning's broadcasts) hangs or breaks both processes
when the signal lands while the other process is already inside a collective of the step.
`SignalInsideCollective` makes that moment deterministic: rank 0 waits at the start of a batch until
rank 1 surely waits in the step's first collective (DDP's broadcast of the BatchNorm buffers), then
signals itself.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from test_tasks_ddp import REPO, TINY_RUN, free_port

TIMEOUT_S = 120  # a healthy pre-empted run takes ~15 s on two busy cores; a hang never ends
DDP_RUN = [
    *TINY_RUN, "--data.num_train", "64", "--trainer.limit_val_batches", "1",
    "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu",
]


class SignalInsideCollective(L.Callback):
    """Rank 0 sends itself SIGTERM at the start of training batch ``batch``, once rank 1 waits for it."""

    def __init__(self, batch: int = 2, wait_s: float = 1.0) -> None:
        self.batch, self.wait_s = batch, wait_s

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int) -> None:
        if trainer.global_rank == 0 and i == self.batch:
            time.sleep(self.wait_s)  # rank 1 runs on into the step's first collective and waits there
            os.kill(os.getpid(), signal.SIGTERM)


def start(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """``cls.py`` with two processes in a new process group (so the test can signal the whole group)."""
    environment = os.environ | {
        "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "experiments/cls.py", *DDP_RUN, "--run_dir", str(run_dir), *extra],
        cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def wait(process: subprocess.Popen[str]) -> str:
    """The run's output once it exits; kills the whole group and fails if it does not within the timeout."""
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the pre-empted DDP run hung (killed after {TIMEOUT_S} s):\n{output[-3000:]}")
    return output


def assert_pre_empted_and_resumable(process: subprocess.Popen[str], run_dir: Path) -> None:
    output = wait(process)
    assert process.returncode == 143, output[-3000:]
    assert "pre-empted: last.ckpt saved" in output
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert 0 < checkpoint["global_step"] < 8  # 64 images in global batches of 8: stopped within the epoch
    resumed = subprocess.run(
        [sys.executable, "experiments/cls.py", *TINY_RUN, "--data.num_train", "64", "--trainer.limit_val_batches",
         "1", "--run_dir", str(run_dir), "--ckpt_path", "last"],
        cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.slow
def test_sigterm_inside_the_step_collective_saves_and_stops_every_process(tmp_path: Path) -> None:
    process = start(tmp_path, "--trainer.callbacks+=test_tasks_sigterm_ddp.SignalInsideCollective")
    assert_pre_empted_and_resumable(process, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_sigterm_to_the_process_group_at_a_random_moment_never_hangs(tmp_path: Path, trial: int) -> None:
    process = start(tmp_path, "--data.num_train", "4096")
    while not (tmp_path / "config.yaml").is_file() and process.poll() is None:  # written as training starts
        time.sleep(0.2)
    time.sleep(random.Random(trial).uniform(0.0, 2.0))
    os.killpg(process.pid, signal.SIGTERM)
    output = wait(process)
    assert process.returncode == 143, output[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
