"""The command line of ``experiments/cls.py`` and ``experiments/seg.py`` (LightningCLI).

Subcommands, as Lightning's: ``fit`` (the default when none is given), ``validate`` and ``test``
(score ``--ckpt_path`` with the run's own config, `vt.evaluate`), ``predict`` (`vt.predict`).
Every option is a key of the config: ``--model.*`` (the task: :mod:`vt.tasks`), ``--data.*`` (a
`vt.data` datamodule), ``--trainer.*`` (every Lightning Trainer flag), plus ``--run_dir`` and
``--ckpt_path``; ``--config FILE.yaml`` sets any of them and ``--print_config`` shows them all.
A few short aliases stand for full keys (see ``aliases`` in :func:`main`), e.g.
``--backbone vt_resnet34`` is ``--model.name vt_resnet34`` and ``--data imagenet`` is
``--data vt.data.ImageNetDataModule``.

Each run writes everything into one directory (:mod:`vt.run_dir`: where it is, what it holds).
"""

from __future__ import annotations

from argparse import ArgumentError
import contextlib
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from vt.data import DATAMODULES, BadSampleError, DatasetError, VTDataModule
from vt.data.base import check_task_data
from vt.evaluate import find_checkpoint, markdown, raw_weights, run_config, write_results
from vt.checkpoint import check_checkpoint, load_checkpoint_file
from vt.run_dir import RUN_DIR_ENV, RUNS_ROOT, lock, remove_unused_versions, resolve_run_dir, summary
from vt.tasks import (
    CLASSIFICATION_RECIPES, TASKS, AtomicCheckpointIO, NonFiniteError, PreemptionCheckpoint, VTTask,
)
from vt.tasks.callbacks import interrupted_by_ctrl_c
from vt.tasks.recipes import resolve_recipe

SHORT_TASK = {"classification": "cls", "segmentation": "seg"}
EXIT_USAGE, EXIT_FAILED, EXIT_PREEMPTED = 2, 1, 128 + 15
EXIT_INTERRUPTED = 128 + 2  # a Ctrl-C: the shell's status for SIGINT
# Set it to see the traceback of an unexpected error instead of its one line (`unexpected`).
DEBUG_ENV = "VT_DEBUG"
SUBCOMMANDS = ("fit", "validate", "test", "predict")
EVALUATE = ("validate", "test")
# Per-class tables longer than this (ImageNet's 1000 classes) are only in the JSON and markdown files.
PRINTED_CLASSES = 200

# The quick default run: synthetic shapes on a CPU in a few minutes (README, "Training"). Data
# keys are only those no other datamodule shares: jsonargparse keeps the values of shared keys
# when ``--data imagenet`` changes the class, and ImageNet must not inherit a demo's image size.
QUICK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {
        "data": {"class_path": "vt.data.SyntheticDataModule", "init_args": {"num_train": 2048, "num_val": 512}},
        "model.recipe": "synthetic",
        "trainer.max_epochs": 4,
        "trainer.log_every_n_steps": 10,
    },
    "segmentation": {
        "data": {"class_path": "vt.data.SyntheticDataModule", "init_args": {"num_train": 1024, "num_val": 256}},
        "trainer.max_epochs": 4,
        "trainer.log_every_n_steps": 10,
    },
}


class SaveConfigOnStart(SaveConfigCallback):
    """Writes ``config.yaml`` when training starts, once a resumed checkpoint has been loaded.

    A resume that fails (a checkpoint that does not fit the new options) thus keeps the config of
    the run it tried to resume, and the run's "resume or extend" command keeps working.
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Writes nothing yet (the base class writes here): see ``on_train_start``."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        super().setup(trainer, pl_module, "fit")


def expand_aliases(argv: list[str], aliases: dict[str, str], lists: frozenset[str] = frozenset()) -> list[str]:
    """``argv`` with each short alias replaced by its full key, and ``--data NAME`` by its class.

    Both ``--flag value`` and ``--flag=value`` forms are understood. An alias in ``lists`` takes
    every value up to the next flag (``--scales 0.5 1.0`` -> ``--model.test_scales [0.5, 1.0]``).
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        i += 1
        if flag in lists and not eq:
            values = []
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            out += [aliases[flag], "[" + ", ".join(values) + "]"]
        elif flag in aliases or flag == "--data":
            if not eq:
                value = argv[i] if i < len(argv) else ""
                i += 1
            if flag == "--data":
                out += ["--data", _datamodule_path(value)]
            else:
                out += [aliases[flag], value]
        else:
            out.append(argv[i - 1])
    return out


def _datamodule_path(value: str) -> str:
    """``imagenet`` -> ``vt.data.ImageNetDataModule``; class paths, files and YAML pass through.

    Raises a one-line ``ValueError`` listing the names for anything else (a typo: ``imagnet``).
    """
    if value in DATAMODULES:
        return f"vt.data.{DATAMODULES[value].__name__}"
    if "." in value or "{" in value or ":" in value or os.path.exists(value):
        return value
    raise ValueError(
        f"--data {value!r} is not a dataset; choose one of {', '.join(DATAMODULES)} "
        "(or give a datamodule class path, or a YAML file)"
    )


class VTCLI(LightningCLI):
    """LightningCLI for a :class:`~vt.tasks.VTTask`: run directory, loggers, checkpoints, links.

    Links (set from the datamodule, never given): ``model.batch_size`` and ``model.num_classes``
    (``data.num_classes``, or ``data.num_seg_classes`` for segmentation; ``model.ignore_index``
    too); for classification ``data.recipe`` follows ``model.recipe`` (the augmentation of the
    recipe).
    """

    def __init__(self, task: str, args: list[str], stage: str = "fit", checkpoint: Path | None = None) -> None:
        """``stage``: ``fit``, or ``validate``/``test`` of ``checkpoint`` (which writes no run files)."""
        self.task_name = task
        self.stage = stage
        self.checkpoint = checkpoint
        self.run_dir = ""
        super().__init__(
            TASKS[task],
            VTDataModule,
            subclass_mode_data=True,
            run=False,
            args=args,
            seed_everything_default=0,
            save_config_callback=SaveConfigOnStart if stage == "fit" else None,
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config
            load_from_checkpoint_support=False,
            auto_configure_optimizers=False,  # the recipe is the optimizer
            parser_kwargs={"exit_on_error": False, "description": __doc__},
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_dir", type=str | None, default=None,
            help=f"where the run writes everything (default: {RUNS_ROOT}/<cls|seg>/<model>/version_<N>)",
        )
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None,
            help="fit: resume from this checkpoint; 'last' resumes the newest run of this model (or --run_dir). "
                 "validate/test: the checkpoint to score ('last': the newest last.ckpt of the task, of --run_dir, "
                 "or of --backbone/--model); its run's config.yaml is read first",
        )
        parser.link_arguments("data.batch_size", "model.batch_size", apply_on="instantiate")
        if self.task_name == "classification":
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
            parser.link_arguments("model.recipe", "data.init_args.recipe", compute_fn=_augmentation)
        else:
            parser.link_arguments("data.num_seg_classes", "model.num_classes", apply_on="instantiate")
            parser.link_arguments("data.ignore_index", "model.ignore_index", apply_on="instantiate")
        # The task logs its own hyper-parameters and resolved recipe; Lightning's automatic logging
        # would also merge in the datamodule's and fail on keys the two legitimately disagree on
        # (a segmenter has num_classes + 1 outputs). The datamodule's are in config.yaml.
        parser.set_defaults({"trainer.enable_autolog_hparams": False, **QUICK_DEFAULTS[self.task_name]})

    def before_instantiate_classes(self) -> None:
        """Fixes the run directory; every output of the run goes under it."""
        config = self.config
        check_task_data(config.data.class_path, TASKS[self.task_name].target_key, self.task_name, DATAMODULES)
        if self.stage != "fit":  # scoring writes beside the checkpoint, and never claims a version_<N>
            self.run_dir = str(self.checkpoint.parent if self.checkpoint else ".")
            return
        self.run_dir = resolve_run_dir(
            SHORT_TASK[self.task_name], config.model.name, config.run_dir, config.ckpt_path,
            config.trainer.num_nodes,
        )
        lock(self.run_dir)  # before anything is written into it
        config.run_dir = self.run_dir  # so that the saved config.yaml resumes this very run
        config.trainer.default_root_dir = self.run_dir  # SLURM's requeue checkpoints go here too

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        _check_image_size(self.model, self.datamodule)  # the model and data are built, the Trainer not yet
        if isinstance(self.datamodule, VTDataModule):
            # List the data now (setup builds each split once), so that a missing file or an empty
            # class folder is the first thing printed, not a line after the warnings and
            # Lightning's start-up lines.
            self.datamodule.setup("fit" if self.stage == "fit" else "validate")
        if (self.stage == "fit" and self.config.model.recipe == "synthetic"
                and not self.config.data.class_path.endswith("SyntheticDataModule")):
            rank_zero_warn("--recipe synthetic is the quick demo's; the paper's are --recipe standard|advanced")
        trainer = self.config_init.trainer
        if self.stage != "fit":  # no logs, no checkpoints: the scores go into <checkpoint>.<stage>.json
            kwargs.update(logger=False, enable_checkpointing=False)
        elif trainer.logger in (None, True):
            kwargs["logger"] = [
                TensorBoardLogger(self.run_dir, name="", version=""),
                # One CSV per session (csv/version_0, then version_1 after a resume): Lightning's
                # CSV logger would otherwise replace the metrics of the interrupted session.
                CSVLogger(self.run_dir, name="csv"),
            ]
        if self.stage == "fit" and trainer.enable_checkpointing is not False:
            task: VTTask = self.model
            directory = os.path.join(self.run_dir, "checkpoints")
            metric = task.monitor.split("/")[-1]
            given = trainer.callbacks or []
            kwargs["callbacks"] = (given if isinstance(given, list) else [given]) + [
                ModelCheckpoint(
                    directory, filename=f"best-epoch{{epoch:03d}}-{metric}{{{task.monitor}:.4f}}",
                    monitor=task.monitor, mode="max", auto_insert_metric_name=False,
                ),
                # last.ckpt after every epoch, improved or not (``save_last`` only follows saves).
                ModelCheckpoint(directory, filename="last", enable_version_counter=False),
                PreemptionCheckpoint(directory),
            ]
        given_plugins = trainer.plugins or []
        plugins = given_plugins if isinstance(given_plugins, list) else [given_plugins]
        own_writer = isinstance(trainer.strategy, Strategy) and trainer.strategy._checkpoint_io is not None
        if not own_writer and not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]  # a checkpoint writer given is kept
        return super().instantiate_trainer(**kwargs)

    def fit(self) -> None:
        """Trains (resuming from ``--ckpt_path``), then reports where everything went."""
        start = time.perf_counter()
        os.environ[RUN_DIR_ENV] = self.run_dir
        try:
            _check_resume(self)
            self.trainer.fit(self.model, self.datamodule, ckpt_path=self.config.ckpt_path)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        if self.trainer.is_global_zero:
            print(summary(self.trainer, self.run_dir, time.perf_counter() - start))


    def evaluate(self) -> dict[str, Any]:
        """Scores the checkpoint (``validate`` or ``test``), prints and writes the results beside it.

        A run that kept an EMA is scored twice: the averaged weights (``ema``), then the trained
        ones (``raw``). Returns what was written.
        """
        task: VTTask = self.model
        stage = self.stage
        if stage == "test" and not is_overridden("test_step", task):
            rank_zero_warn(f"{type(task).__name__} has no test loop; scoring with its validation loop")
            stage = "validate"
        run = self.trainer.test if stage == "test" else self.trainer.validate
        passes = [("ema", contextlib.nullcontext()), ("raw", raw_weights(task))] if task.ema is not None else [
            ("model", contextlib.nullcontext())]
        scored: dict[str, Any] = {}
        for i, (name, weights) in enumerate(passes):
            with weights:
                # The first pass loads the checkpoint; the next ones score what it loaded.
                metrics = run(task, self.datamodule, ckpt_path=str(self.checkpoint) if i == 0 else None, verbose=False)
            scored[name] = {"metrics": {k: float(v) for k, v in metrics[0].items()}, "per_class": _per_class(task)}
        report = getattr(task, "last_eval_report", None) or {}
        protocol = report.get("protocol") or getattr(task, "evaluation_protocol", None)
        saved = load_checkpoint_file(self.checkpoint)
        results = {
            "subcommand": self.stage,
            "checkpoint": str(self.checkpoint),
            # The epoch and step it was saved at (after that epoch's validation during fit).
            **{k: saved.get(k) for k in ("epoch", "global_step")},
            "protocol": protocol() if callable(protocol) else (protocol or f"{stage} loop of {type(task).__name__}"),
            "weights": scored,
        }
        if self.trainer.is_global_zero:
            json_path, md_path = write_results(results, self.checkpoint, self.stage)
            print(_printed(results))
            print(f"written: {json_path}, {md_path}")
        return results


def _per_class(task: VTTask) -> dict[str, dict[str, float]]:
    """The last evaluation's per-class scores by class name: ``{"accuracy": {...}}`` (classifiers),
    ``{"IoU": {...}, "Acc": {...}}`` (segmenters' ``last_eval_report``); undefined ones left out."""
    if getattr(task, "per_class_metrics", None):
        return dict(task.per_class_metrics)
    rows = (getattr(task, "last_eval_report", None) or {}).get("classes") or []
    keys = [k for k in ("IoU", "Acc") if rows and k in rows[0]]
    return {k: {str(r["name"]): r[k] for r in rows if r[k] is not None} for k in keys}


def _printed(results: dict[str, Any]) -> str:
    """The results' markdown, without per-class tables too long to read on a terminal."""
    trimmed = dict(results, weights={
        name: dict(r, per_class={k: v for k, v in r["per_class"].items() if len(v) <= PRINTED_CLASSES})
        for name, r in results["weights"].items()
    })
    return markdown(trimmed).rstrip()


def _flag_value(args: list[str], flag: str) -> str | None:
    """The last value given to ``flag`` in ``args`` (``--flag v`` or ``--flag=v``), else ``None``."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def evaluation_args(task: str, args: list[str]) -> tuple[Path | None, list[str]]:
    """The checkpoint ``validate``/``test`` score, and ``args`` to build its run's model and data.

    The run's config comes first (``--config <run>/config.yaml``, `vt.evaluate.run_config`), so
    every flag given overrides it; ``--ckpt_path`` becomes the resolved file. ``--help`` needs no
    checkpoint.
    """
    ckpt_path = _flag_value(args, "--ckpt_path")
    if ckpt_path is None and any(a in ("-h", "--help") for a in args):
        return None, args
    given_config = _flag_value(args, "--config")
    saved: dict[str, Any] = {}
    if given_config and os.path.isfile(given_config):  # --config <run>/config.yaml --ckpt_path last: that run
        saved = yaml.safe_load(Path(given_config).read_text()) or {}
    checkpoint = find_checkpoint(
        ckpt_path, SHORT_TASK[task],
        _flag_value(args, "--model.name") or (saved.get("model") or {}).get("name"),
        _flag_value(args, "--run_dir") or saved.get("run_dir"),
    )
    given = [a for i, a in enumerate(args) if not (a == "--ckpt_path" or a.startswith("--ckpt_path=")
                                                  or (i and args[i - 1] == "--ckpt_path"))]
    return checkpoint, ["--config", run_config(checkpoint, list(DATAMODULES.values())), *given,
                        "--ckpt_path", str(checkpoint)]


def _check_resume(cli: VTCLI) -> None:
    """One-line ``ValueError`` unless ``--ckpt_path`` is a readable checkpoint of this very model.

    ``last`` is the run directory's ``checkpoints/last.ckpt``; a path that is not a file (Lightning's
    ``hpc:`` or ``registry:`` forms) is left to Lightning.
    """
    ckpt = cli.config.ckpt_path
    path = os.path.join(cli.run_dir, "checkpoints", "last.ckpt") if ckpt == "last" else ckpt
    if path and (ckpt != "last" or os.path.isfile(path)) and ":" not in path:
        check_checkpoint(path, cli.config.model.name, cli.model.state_dict())


def _check_image_size(task: VTTask, datamodule: Any) -> None:
    """A one-line ``ValueError`` when ``--data.image_size`` is below the model's ``min_input_size``.

    The model's own check fires only at its first forward (the sanity check, after the model
    summary) and cannot name the flag.
    """
    need = int(getattr(task.model, "min_input_size", 1))
    size = getattr(datamodule, "image_size", None)
    if isinstance(size, int) and size < need:
        raise ValueError(f"--data.image_size {size} is too small for {task.hparams.name}: it needs images of at "
                         f"least {need}x{need}; pass --data.image_size {need} or more")


def _augmentation(recipe: str) -> str:
    """The datamodule augmentation (``data.recipe``) of a classification recipe."""
    return resolve_recipe(CLASSIFICATION_RECIPES, recipe).augmentation


def main(
    task: str, aliases: dict[str, str], argv: list[str] | None = None, lists: frozenset[str] = frozenset()
) -> int:
    """Runs the subcommand of ``argv`` (default ``sys.argv[1:]``; ``fit`` when it names none) and
    returns the exit status.

    ``fit`` trains; ``validate``/``test`` score ``--ckpt_path``; ``predict`` is `vt.predict.main`.

    Problems with the arguments, the model or the data print one line, ``error: ...``, and
    return 2; a non-finite loss or training state returns 1, and so does any other error, as one
    line naming its type (``VT_DEBUG=1`` shows its traceback instead); a pre-empted run (SIGTERM/SIGUSR1) returns 143
    after saving ``last.ckpt``, and one stopped by a first Ctrl-C returns 130 after saving it (a second
    Ctrl-C interrupts at once).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "fit"
    if stage == "predict":
        from vt.predict import main as predict  # matplotlib and image writing only when predicting

        return predict(argv, task)
    # We pass the expanded sys.argv on purpose (and keep sys.argv: DDP reruns it in each process).
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # The seed is in config.yaml; its log line would come before a one-line error.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    fitting: VTCLI | None = None
    try:
        args = expand_aliases(argv, aliases, lists)
        _check_config_files(args)
        if stage == "fit":
            fitting = _build(task, args)
            fitting.fit()
        else:
            from vt.predict import quiet_lightning

            quiet_lightning()
            checkpoint, args = evaluation_args(task, args)
            _build(task, args, stage, checkpoint).evaluate()
    # DatasetError is a ValueError; Lightning's MisconfigurationException, a bad --trainer.* value.
    except (ArgumentError, ValueError, FileNotFoundError, MisconfigurationException) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except SIGTERMException:
        ctrl_c = fitting is not None and interrupted_by_ctrl_c(fitting.trainer)
        print(f"{'interrupted' if ctrl_c else 'pre-empted'}: last.ckpt saved; resume with --ckpt_path last",
              file=sys.stderr)
        return EXIT_INTERRUPTED if ctrl_c else EXIT_PREEMPTED
    except Exception as err:
        return report_unexpected(err)
    finally:
        remove_unused_versions()  # a run that failed before writing anything leaves no empty version_<N>
    return 0


def report_unexpected(err: Exception) -> int:
    """Prints `unexpected`'s line for ``err`` and returns ``EXIT_FAILED``; with ``VT_DEBUG=1``
    re-raises it instead (its traceback intact). Every command's last ``except`` calls this."""
    if os.environ.get(DEBUG_ENV):
        raise err
    print(f"error: {unexpected(err)}", file=sys.stderr)
    return EXIT_FAILED


def unexpected(err: BaseException) -> str:
    """One line for an error no check foresaw (a full disk, a loader worker killed, a bug).

    The user gets its type and message and how to see the traceback (``VT_DEBUG=1``), not a
    traceback they did not ask for.
    """
    message = f"{type(err).__name__}: {_one_line(err)}"
    if "DataLoader worker" in message and ("killed" in message or "exited unexpectedly" in message):
        message += " (out of memory? lower --data.num_workers or --data.batch_size)"
    return f"{message}; rerun with {DEBUG_ENV}=1 for the traceback"


def _check_config_files(args: list[str]) -> None:
    """A one-line ``ValueError`` naming a ``--config`` file that is not a YAML mapping of options.

    jsonargparse's own message names neither the file nor the flag ("while parsing a flow node ...").
    A missing file is left to it (its message names the path).
    """
    given = [b for a, b in zip(args, args[1:]) if a in ("--config", "-c")]
    given += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for path in filter(os.path.isfile, given):
        try:
            with open(path) as file:
                loaded = yaml.safe_load(file)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"--config {path} is not valid YAML{where} ({getattr(err, 'problem', None) or err}); "
                             "fix the file, or pass the config.yaml a run wrote") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"--config {path} holds a {type(loaded).__name__}, not a mapping of options "
                             "(trainer:, model:, data:, ...); pass the config.yaml a run wrote")


def _build(task: str, args: list[str], *more: Any) -> VTCLI:
    """``VTCLI(task, args, *more)``, its warnings shown only once it is built.

    A run whose arguments, model or data are wrong then prints its one-line error alone, not after
    warnings about a run that never starts.
    """
    with warnings.catch_warnings(record=True) as held:  # the filters in force still apply
        cli = VTCLI(task, args, *more)
    for warning in held:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return cli


def _cause(err: BaseException) -> BaseException | None:
    """What Python's traceback shows as the cause of ``err`` (none after ``raise ... from None``)."""
    return err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def _one_line(err: BaseException) -> str:
    """The cause of ``err``, on one line, after the flag of the config key it concerns (``--data.image_size: ...``).

    jsonargparse wraps an error raised while building a class (a `DatasetError` of a missing
    root) in a multi-line summary of every type it tried, and a `BadSampleError` names its file
    while its cause (PIL's "truncated file") does not: the outermost of our own `DatasetError`\ s
    in the chain is the useful part, else the innermost cause. A DataLoader worker re-raises its
    error with the worker's whole traceback as the message; the last line of that is the error.
    """
    chain = [err]
    while (link := _cause(chain[-1])) is not None:
        chain.append(link)
    cause = next((e for e in chain if isinstance(e, DatasetError)), chain[-1])
    text = str(cause)
    if "Original Traceback" in text:  # torch's ExceptionWrapper: "Caught X in DataLoader worker ..."
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)
    message = " ".join(text.split())
    if isinstance(cause, BadSampleError):
        # A mask read fine but wrong (labels out of range, wrong size) is bad, not unreadable.
        kind = "unreadable" if message.startswith("cannot read") else "bad"
        message += f"; fix or remove it, or pass --data.skip_bad true to skip {kind} samples"
    elif isinstance(cause, MisconfigurationException):
        message += " Fix the --trainer.* option it names (see --help)."
    # jsonargparse nests a subclass's key under its parent's ("data", then "image_size"): their
    # dotted path is the flag to fix, ``--data.image_size``.
    keys: list[str] = []
    for link in chain[:chain.index(cause) + 1] if re.match(r'Parser key "', str(err)) else []:
        key = re.match(r'Parser key "([^"]+)"', str(link))
        if key and (not keys or keys[-1] != key.group(1)):
            keys.append(key.group(1))
    return f"--{'.'.join(keys)}: {message}" if keys else message
