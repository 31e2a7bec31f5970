"""Distributed fits on CPU (gloo): two processes on one "node", and two "nodes" of one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_RUN = [
    "--backbone", "resnet18", "--data.image_size", "32", "--data.num_train", "16", "--data.num_val", "8",
    "--data.batch_size", "4", "--data.num_classes", "4", "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # One thread per process: the processes already share the machine's cores.
    environment = os.environ | {"OMP_NUM_THREADS": "1", "PYTHON": sys.executable} | env
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_process_ddp_fit_on_cpu(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "experiments/cls.py", *TINY_RUN, "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--run_dir", str(tmp_path)],
        MASTER_PORT=str(free_port()),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_two_node_run_on_one_machine(tmp_path: Path) -> None:
    result = run(
        ["bash", "experiments/multinode_local.sh", *TINY_RUN],
        MASTER_PORT=str(free_port()), RUN_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stderr + result.stdout
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output and output.count("final validation:") == 1
