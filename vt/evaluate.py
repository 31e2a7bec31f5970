"""Scoring a checkpoint: ``validate`` / ``test`` of ``experiments/cls.py`` and ``seg.py`` (`vt.cli`).

`find_checkpoint` resolves ``--ckpt_path`` (a file, or ``last``), `run_config` finds the config
the run saved next to it (or rebuilds one from the checkpoint's hyper-parameters), `raw_weights`
scores the trained weights of a run that kept an EMA, and `write_results` writes the metrics
beside the checkpoint as ``<stem>.<validate|test>.json`` and ``.md``, never touching the
checkpoint or ``config.yaml``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from vt.checkpoint import load_checkpoint_file
from vt.run_dir import RUNS_ROOT, newest_last_checkpoint

CONFIG_NAME = "config.yaml"


def find_checkpoint(ckpt_path: str | None, task_dir: str, model: str | None, run_dir: str | None) -> Path:
    """The checkpoint ``--ckpt_path`` names: a file, or ``last``.

    ``last`` is ``<run_dir>/checkpoints/last.ckpt`` with ``--run_dir``, else the most recently
    written ``last.ckpt`` of ``model`` (of any model of the task when ``model`` is ``None``)
    under ``runs/<task_dir>/`` (``task_dir`` may be ``*``: any task). Raises a one-line ``ValueError`` / ``FileNotFoundError``.
    """
    if not ckpt_path:
        raise ValueError("this subcommand scores a checkpoint: pass --ckpt_path PATH (or --ckpt_path last)")
    if ckpt_path != "last":
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
        return path
    if run_dir:
        path = Path(run_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"--ckpt_path last: {path} does not exist")
        return path
    newest = newest_last_checkpoint(Path(RUNS_ROOT), f"{task_dir}/{model or '*'}/*")
    if newest is None:
        raise ValueError(
            f"--ckpt_path last: no last.ckpt of {model or 'any model'} under {Path(RUNS_ROOT) / task_dir}; "
            "pass --run_dir or a path"
        )
    return newest


def run_config(checkpoint: Path, datamodules: Sequence[type]) -> str:
    """The run's config for ``--config``: its ``config.yaml``, or one rebuilt from the checkpoint.

    ``config.yaml`` is looked for beside the checkpoint's folder (``<run>/checkpoints/x.ckpt`` ->
    ``<run>/config.yaml``) and beside the checkpoint. Without one, the task's saved
    hyper-parameters give ``model`` and the datamodule's give ``data``; the datamodule class is
    the one of ``datamodules`` whose arguments are exactly those saved. Returned as a YAML
    (JSON) string when rebuilt, so nothing is written.
    """
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if (folder / CONFIG_NAME).is_file():
            return str(folder / CONFIG_NAME)
    saved = load_checkpoint_file(checkpoint)
    linked = {"num_classes", "batch_size", "ignore_index"}  # set from the datamodule by the CLI
    model = {k: v for k, v in saved.get("hyper_parameters", {}).items() if k not in linked}
    config: dict[str, Any] = {"model": model}
    data_args = saved.get("datamodule_hyper_parameters", {})
    for cls in datamodules:
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        if data_args and params == set(data_args):
            config["data"] = {"class_path": f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}", "init_args": dict(data_args)}
            break
    return json.dumps(config)


@contextlib.contextmanager
def raw_weights(task: torch.nn.Module) -> Iterator[None]:
    """Inside, ``task`` evaluates its trained weights instead of their moving average (``task.ema``)."""
    ema = task.ema
    task.ema = None
    try:
        yield
    finally:
        task.ema = ema


def results_paths(checkpoint: Path, subcommand: str) -> tuple[Path, Path]:
    """``<dir>/<stem>.<subcommand>.json`` and ``.md``, beside the checkpoint."""
    stem = checkpoint.parent / f"{checkpoint.stem}.{subcommand}"
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")


def markdown(results: dict[str, Any]) -> str:
    """The metrics as markdown tables: one column per set of weights, then the per-class values."""
    scored = results["weights"]
    names = list(scored)
    metrics = sorted({m for r in scored.values() for m in r["metrics"]})
    lines = [
        f"# {results['subcommand']}: {results['checkpoint']}",
        "",
        f"protocol: {results['protocol']}",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {m} | " + " | ".join(f"{scored[n]['metrics'].get(m, float('nan')):.4f}" for n in names) + " |"
              for m in metrics]
    kinds = sorted({k for r in scored.values() for k in r.get("per_class", {})})
    for kind in kinds:
        classes = list(next(r["per_class"][kind] for r in scored.values() if kind in r.get("per_class", {})))
        lines += ["", f"per-class {kind}", "", "| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {c} | " + " | ".join(f"{scored[n].get('per_class', {}).get(kind, {}).get(c, float('nan')):.4f}"
                                          for n in names) + " |" for c in classes]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], checkpoint: Path, subcommand: str) -> tuple[Path, Path]:
    """Writes ``results`` beside ``checkpoint`` as JSON and markdown; returns both paths."""
    json_path, md_path = results_paths(checkpoint, subcommand)
    if checkpoint.resolve() in (json_path.resolve(), md_path.resolve()):  # a checkpoint named x.validate.json
        raise ValueError(f"refusing to overwrite the checkpoint {checkpoint} with its results")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
