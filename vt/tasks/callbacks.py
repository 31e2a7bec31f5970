"""Saving a checkpoint when a run is pre-empted (SLURM, Kubernetes, Ctrl-\\ of a job manager)."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info


def _forward_to_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)


class PreemptionCheckpoint(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` when the run receives SIGTERM or SIGUSR1, then lets it exit.

    Lightning turns SIGTERM into a ``SIGTERMException`` at the end of the current batch on every
    process (it tells the others); this callback saves the checkpoint at that point, so
    ``--ckpt_path last`` resumes from the batch the run stopped at. SIGUSR1 is the warning SLURM
    sends before the end of a job (``#SBATCH --signal=USR1@120``): under SLURM Lightning's own
    handler takes it (``SLURMEnvironment(auto_requeue=True)``: it saves ``hpc_ckpt_*.ckpt`` and
    requeues the job, which resumes from it); anywhere else this callback makes it a SIGTERM.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        self._previous_sigusr1: Any = None

    @property
    def path(self) -> str:
        return os.path.join(self.dirpath, "last.ckpt")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its handlers before this hook; only an unhandled SIGUSR1 is taken.
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            self._previous_sigusr1 = signal.signal(signal.SIGUSR1, _forward_to_sigterm)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_sigusr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_sigusr1)
            self._previous_sigusr1 = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            rank_zero_info(f"pre-empted at step {trainer.global_step}: saved {self.path}")
