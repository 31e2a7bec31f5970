"""The run directory: one per training run, holding everything it writes.

``runs/<cls|seg>/<model>/version_<N>`` unless ``--run_dir`` says otherwise (under SLURM or
torchrun the job's id replaces ``version_<N>``, so that every process, and a requeued job, finds
the same directory):

    config.yaml            the full config of the run (``--config`` it to rerun or resume)
    events.out.tfevents.*  TensorBoard logs
    csv/version_<k>/       the same metrics as CSV, one folder per session (resumes add one)
    checkpoints/           last.ckpt (every epoch, and on SIGTERM/SIGUSR1) and best-*.ckpt

The command line (:mod:`vt.cli`) picks it with `resolve_run_dir` and reports it with `summary`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS_ROOT = "runs"
# Lightning starts the other processes of a single-node DDP run by rerunning the command; they
# read the run directory the first process chose from here.
RUN_DIR_ENV = "VT_RUN_DIR"
# The version_<N> folders this process created (`_claim_version`), until `remove_unused_versions`.
_claimed: list[Path] = []
LOCK_FILE = ".lock"
# The open lock file of the run this process trains (`lock`); closing it (or dying) releases it.
_held: dict[str, Any] = {}
# A ``--run_dir`` this process created (`lock`), removed with the unused versions when nothing ran.
_created: list[Path] = []


def resolve_run_dir(task: str, model: str, run_dir: str | None, ckpt_path: str | None, num_nodes: int) -> str:
    """The run directory: explicit, inherited from the launching process, resumed, the job's, or new.

    A new ``version_<N>`` is created here, so that runs started together never share one.

    ``--ckpt_path last`` without ``--run_dir`` continues the run of ``model`` whose ``last.ckpt``
    was written most recently. Raises ``ValueError`` when there is none, or when processes
    started separately could not agree on a new directory without ``--run_dir``.
    """
    if run_dir:
        if os.path.exists(run_dir) and not os.path.isdir(run_dir):
            raise ValueError(f"--run_dir {run_dir} is a file; pass a directory (created if missing)")
        check_writable(run_dir, "--run_dir")
        return run_dir
    if os.environ.get(RUN_DIR_ENV):
        return os.environ[RUN_DIR_ENV]
    base = Path(RUNS_ROOT) / task / model
    if ckpt_path == "last":
        newest = newest_last_checkpoint(base, "*")
        if newest is None:
            raise ValueError(f"--ckpt_path last: no run of {model} under {base} to resume; pass --run_dir")
        return str(newest.parents[1])
    job = _job_id()
    if job:
        return str(base / job)
    if num_nodes > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "processes started separately (several nodes, or torchrun without --rdzv-id) must share "
            "one directory: pass the same --run_dir to each"
        )
    return _claim_version(base)


def newest_last_checkpoint(root: Path, runs: str) -> Path | None:
    """The most recently written ``<run>/checkpoints/last.ckpt`` of the runs ``root.glob(runs)`` finds
    (``"*"``: every version of one model), or ``None``: what ``--ckpt_path last`` means without ``--run_dir``."""
    saved = list(root.glob(f"{runs}/checkpoints/last.ckpt"))
    return max(saved, key=lambda p: p.stat().st_mtime) if saved else None


def check_writable(folder: str | os.PathLike[str], flag: str) -> None:
    """A one-line ``ValueError`` unless ``folder``, or the folder it would be created in, takes files.

    Checked before anything runs (nothing is created): otherwise a read-only disk or a path under
    a file fails only when the first output is written, as a traceback from the loggers.
    """
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        tempfile.TemporaryFile(dir=existing).close()  # the one reliable test (root passes os.access)
    except OSError as err:
        raise ValueError(f"{flag} {folder} cannot be written ({existing}: {err.strerror}); "
                         "pass a directory you can write (created if missing)") from None


def _claim_version(base: Path) -> str:
    """Creates and returns ``base/version_<N>``, N one above the highest; never a folder another run holds.

    The folder is made with an exclusive ``mkdir``: of runs started together, each gets its own
    (the next number when another run took this one first).
    """
    base.mkdir(parents=True, exist_ok=True)
    found = (re.fullmatch(r"version_(\d+)", p.name) for p in base.glob("version_*"))
    versions = [int(m.group(1)) for m in found if m]
    version = max(versions) + 1 if versions else 0
    while True:
        try:
            os.mkdir(base / f"version_{version}")
        except FileExistsError:
            version += 1
            continue
        except FileNotFoundError:  # another run's `remove_unused_versions` removed the empty model folder
            base.mkdir(parents=True, exist_ok=True)
            continue
        _claimed.append(base / f"version_{version}")
        return str(base / f"version_{version}")


def remove_unused_versions() -> None:
    """Releases the run's lock; removes the ``version_<N>`` folders this process claimed (and a
    ``--run_dir`` it created) that no run started in.

    A run that fails before training starts (bad data, a bad checkpoint, a bad trainer option)
    so leaves no folder behind. Training writes ``config.yaml`` when it starts: a folder with one,
    or with any checkpoint, is kept; before that only the loggers' empty start files can be there.
    """
    unlock()
    while _created:
        folder = _created.pop()
        if _unused(folder):
            shutil.rmtree(folder, ignore_errors=True)
    while _claimed:
        folder = _claimed.pop()
        if _unused(folder):
            shutil.rmtree(folder, ignore_errors=True)
            # Its model, task and runs/ folders too, where this left them empty (a mistyped model
            # name's first run would leave runs/cls/<typo>/); rmdir removes only an empty folder.
            for parent in folder.parents[:3]:
                try:
                    parent.rmdir()
                except OSError:
                    break


def _unused(folder: Path) -> bool:
    """A run folder no run started in: no ``config.yaml``, no checkpoint (`remove_unused_versions`)."""
    return folder.is_dir() and not (folder / "config.yaml").exists() and not any(folder.rglob("*.ckpt"))


def _launching_process() -> bool:
    """Whether this process is the one that owns the run: not a DDP, torchrun or SLURM rank above 0.

    The other processes of a job share its directory by design, so only the first takes the lock.
    """
    if os.environ.get(RUN_DIR_ENV):  # a DDP rank Lightning started by rerunning the command
        return False
    return all(os.environ.get(var, "0") in ("", "0") for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def lock(run_dir: str) -> None:
    """Takes the run directory for this training process, or raises a one-line ``ValueError``.

    Two processes training into one directory (a resume started while the run still trains, the
    same ``--run_dir`` given twice) would overwrite each other's ``last.ckpt`` and logs. The lock
    is an exclusive ``flock`` on ``<run_dir>/.lock``, which the kernel releases when the process
    ends, however it ends (a SIGKILL leaves no stale lock, and a requeued SLURM job takes it
    again). The file holds the owner's host, process id and start time, for the message. Where
    the filesystem has no ``flock`` (some network mounts), the run goes on without a lock.
    """
    if not _launching_process() or run_dir in _held:
        return
    if not os.path.isdir(run_dir):
        os.makedirs(run_dir)
        _created.append(Path(run_dir))
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise ValueError(
            f"run directory {run_dir} is in use: {owner} is training into it; wait for that run to end "
            "(or stop it), or pass another --run_dir"
        ) from None
    except OSError:  # no flock on this filesystem
        handle.close()
        return
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}, started "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _held[run_dir] = handle


def unlock() -> None:
    """Releases the run directories this process locked (`lock`)."""
    while _held:
        _, handle = _held.popitem()
        handle.close()


def _job_id() -> str | None:
    """A name every process of a SLURM or torchrun job shares (and a requeued SLURM job keeps)."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"slurm_{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm_{os.environ['SLURM_JOB_ID']}"
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return None if run_id == "none" else f"torchrun_{run_id}"


def summary(trainer: Any, run_dir: str, seconds: float) -> str:
    """The final validation metrics and the paths of everything the run wrote."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    lines = [
        f"finished in {seconds / 60:.1f} min, {trainer.current_epoch} epochs, {trainer.global_step} steps",
        "final validation: " + "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())),
    ]
    best, last = (trainer.checkpoint_callbacks + [None, None])[:2]
    if best is not None and best.best_model_path:
        lines.append(f"best {best.monitor} {float(best.best_model_score):.4f}: {best.best_model_path}")
    if last is not None and last.best_model_path:
        lines.append(f"last checkpoint: {last.best_model_path}")
    lines += [
        f"run directory: {run_dir}",
        f"  config: {os.path.join(run_dir, 'config.yaml')}",
        f"  TensorBoard: tensorboard --logdir {run_dir}",
        f"  CSV: {os.path.join(run_dir, 'csv', 'version_*', 'metrics.csv')}",
        f"resume or extend: --config {os.path.join(run_dir, 'config.yaml')} --ckpt_path last",
    ]
    return "\n".join(lines)
