"""Writing checkpoints whole or not at all (`AtomicCheckpointIO`), and when a run is pre-empted
(SLURM, Kubernetes, Ctrl-\\ of a job manager: `PreemptionCheckpoint`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_prefixed_message, rank_zero_info

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file beside it, syncs it to disk and renames it into place.

    A failure (a full disk, a kill) leaves the previous file, never a truncated or empty one:
    Lightning's own writer stages the file in ``$TMPDIR``, and when that is another filesystem the
    final move is a plain copy into the checkpoint's name. Remote paths (``s3://``) keep Lightning's.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)


def _forward_to_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)


def _is_default_sigint(handler: Any) -> bool:
    """Whether ``handler`` is Python's own SIGINT handling (``KeyboardInterrupt``), not someone else's."""
    return handler is signal.default_int_handler


class PreemptionCheckpoint(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` when the run receives SIGTERM or SIGUSR1, then lets it exit.

    Lightning turns SIGTERM into a ``SIGTERMException`` at the end of the current batch on every
    process (it tells the others); this callback saves the checkpoint at that point, so
    ``--ckpt_path last`` resumes from the batch the run stopped at (written through the Trainer's
    checkpoint writer: `AtomicCheckpointIO` in the command line). SIGUSR1 is the warning SLURM
    sends before the end of a job (``#SBATCH --signal=USR1@120``): under SLURM Lightning's own
    handler takes it (``SLURMEnvironment(auto_requeue=True)``: it saves ``hpc_ckpt_*.ckpt`` and
    requeues the job, which resumes from it); anywhere else this callback makes it a SIGTERM. The
    first Ctrl-C (SIGINT) is made a SIGTERM too (``interrupted`` says so), and Python's handler is
    put back at once, so that a second Ctrl-C interrupts without waiting for the step or the save.

    Its SIGTERM handler runs no collective. Lightning's broadcasts from inside the handler, so a
    signal landing while another process waits in a collective of the step (DDP's buffer broadcast,
    a gradient all-reduce) pairs mismatched collectives: the processes crash or wait forever. This
    handler records the signal (``signalled``) and forwards it once to the processes the launcher
    started; under several processes every one then learns of it at the next training step's
    shared decision (`VTTask._check_finite` calls `stop_if_preempted`) and all stop at the end of
    that same step (so under several processes it needs a `VTTask`; a signal during validation
    takes effect at the next training step, and after the last one the run simply finishes). In one
    process the run stops at the end of the current batch, as Lightning's.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        self._previous_sigusr1: Any = None
        self._previous_sigint: Any = None
        self._sigint_pid = -1  # the process whose Ctrl-C stops the run (not the loader workers it forks)
        self.signalled = False  # this process received SIGTERM (or a forwarded SIGUSR1) during the fit
        self.interrupted = False  # ... and it was a Ctrl-C (SIGINT) made a SIGTERM

    @property
    def path(self) -> str:
        return os.path.join(self.dirpath, "last.ckpt")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning builds its SIGTERM handler from this attribute after the setup hooks; an
        # instance attribute takes the place of its notifier and keeps the rest it composes.
        self.signalled = self.interrupted = False
        trainer._signal_connector._sigterm_notifier_fn = functools.partial(self._record_sigterm, trainer)

    def _record_sigterm(self, trainer: L.Trainer, signum: int, frame: FrameType | None) -> None:
        log.info(rank_prefixed_message(f"Received SIGTERM: {signum}", trainer.local_rank))
        if not self.signalled and trainer.strategy.launcher is not None:
            trainer.strategy.launcher.kill(signum)  # the processes it started stop with this one
        self.signalled = True
        if trainer.world_size == 1:  # no process to agree with: stop at the end of this batch
            trainer._signal_connector.received_sigterm = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its handlers before this hook; only an unhandled SIGUSR1 is taken.
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            self._previous_sigusr1 = signal.signal(signal.SIGUSR1, _forward_to_sigterm)
        if main_thread and _is_default_sigint(signal.getsignal(signal.SIGINT)):
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_first_sigint)
            self._sigint_pid = os.getpid()

    def _on_first_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Only records and forwards (no collective, no I/O): the SIGTERM handler does the rest.
        if os.getpid() != self._sigint_pid:
            return  # a loader worker forked with this handler: it keeps serving until this process stops
        signal.signal(signal.SIGINT, self._previous_sigint)  # a second Ctrl-C: KeyboardInterrupt at once
        self._previous_sigint = None
        self.interrupted = True
        signal.raise_signal(signal.SIGTERM)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        trainer._signal_connector.__dict__.pop("_sigterm_notifier_fn", None)
        if self._previous_sigusr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_sigusr1)
            self._previous_sigusr1 = None
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            how = "interrupted (Ctrl-C)" if self.interrupted else "pre-empted"
            rank_zero_info(f"{how} at step {trainer.global_step}: saved {self.path}")


def stop_if_preempted(trainer: L.Trainer, signalled: int) -> None:
    """Stops every process at the end of this training step when ``signalled`` processes got SIGTERM.

    ``signalled`` must be the same on every process: the sum over processes of
    `preemption_signalled`, taken by a collective all of them run at the same point of the step.
    Lightning then raises ``SIGTERMException`` on each after the step, and `PreemptionCheckpoint`
    saves ``last.ckpt``.
    """
    if signalled:
        trainer._signal_connector.received_sigterm = True


def interrupted_by_ctrl_c(trainer: L.Trainer) -> bool:
    """Whether this process's stop came from a Ctrl-C (SIGINT) that `PreemptionCheckpoint` made a SIGTERM."""
    return any(isinstance(c, PreemptionCheckpoint) and c.interrupted for c in trainer.callbacks)


def preemption_signalled(trainer: L.Trainer) -> bool:
    """Whether this process's `PreemptionCheckpoint` recorded SIGTERM (SIGUSR1) during this fit."""
    return any(isinstance(c, PreemptionCheckpoint) and c.signalled for c in trainer.callbacks)
