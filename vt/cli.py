"""The command line of ``experiments/cls.py`` and ``experiments/seg.py`` (LightningCLI).

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
import logging
import os
import re
import sys
import time
import warnings
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from vt.data import DATAMODULES, VTDataModule
from vt.run_dir import RUN_DIR_ENV, RUNS_ROOT, resolve_run_dir, summary
from vt.tasks import (
    CLASSIFICATION_RECIPES, TASKS, AtomicCheckpointIO, NonFiniteError, PreemptionCheckpoint, VTTask,
)
from vt.tasks.recipes import resolve_recipe

SHORT_TASK = {"classification": "cls", "segmentation": "seg"}
EXIT_USAGE, EXIT_FAILED, EXIT_PREEMPTED = 2, 1, 128 + 15

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


def expand_aliases(argv: list[str], aliases: dict[str, str]) -> list[str]:
    """``argv`` with each short alias replaced by its full key, and ``--data NAME`` by its class.

    Both ``--flag value`` and ``--flag=value`` forms are understood.
    """
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag in aliases or flag == "--data":
            if not eq:
                value = next(args, "")
            if flag == "--data":
                out += ["--data", _datamodule_path(value)]
            else:
                out += [aliases[flag], value]
        else:
            out.append(arg)
    return out


def _datamodule_path(value: str) -> str:
    """``imagenet`` -> ``vt.data.ImageNetDataModule``; class paths, files and YAML pass through."""
    if value in DATAMODULES:
        return f"vt.data.{DATAMODULES[value].__name__}"
    return value


class VTCLI(LightningCLI):
    """LightningCLI for a :class:`~vt.tasks.VTTask`: run directory, loggers, checkpoints, links.

    Links (set from the datamodule, never given): ``model.batch_size`` and ``model.num_classes``
    (``data.num_classes``, or ``data.num_seg_classes`` for segmentation; ``model.ignore_index``
    too); for classification ``data.recipe`` follows ``model.recipe`` (the augmentation of the
    recipe).
    """

    def __init__(self, task: str, args: list[str]) -> None:
        self.task_name = task
        self.run_dir = ""
        super().__init__(
            TASKS[task],
            VTDataModule,
            subclass_mode_data=True,
            run=False,
            args=args,
            seed_everything_default=0,
            save_config_callback=SaveConfigOnStart,
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
            help="resume from this checkpoint; 'last' resumes the newest run of this model (or --run_dir)",
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
        self.run_dir = resolve_run_dir(
            SHORT_TASK[self.task_name], config.model.name, config.run_dir, config.ckpt_path,
            config.trainer.num_nodes,
        )
        if config.model.recipe == "synthetic" and not config.data.class_path.endswith("SyntheticDataModule"):
            rank_zero_warn("--recipe synthetic is the quick demo's; the paper's are --recipe standard|advanced")
        config.run_dir = self.run_dir  # so that the saved config.yaml resumes this very run
        config.trainer.default_root_dir = self.run_dir  # SLURM's requeue checkpoints go here too

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = self.config_init.trainer
        if trainer.logger in (None, True):
            kwargs["logger"] = [
                TensorBoardLogger(self.run_dir, name="", version=""),
                # One CSV per session (csv/version_0, then version_1 after a resume): Lightning's
                # CSV logger would otherwise replace the metrics of the interrupted session.
                CSVLogger(self.run_dir, name="csv"),
            ]
        if trainer.enable_checkpointing is not False:
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
            self.trainer.fit(self.model, self.datamodule, ckpt_path=self.config.ckpt_path)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        if self.trainer.is_global_zero:
            print(summary(self.trainer, self.run_dir, time.perf_counter() - start))


def _augmentation(recipe: str) -> str:
    """The datamodule augmentation (``data.recipe``) of a classification recipe."""
    return resolve_recipe(CLASSIFICATION_RECIPES, recipe).augmentation


def main(task: str, aliases: dict[str, str], argv: list[str] | None = None) -> int:
    """Parses ``argv`` (default ``sys.argv[1:]``), trains, and returns the exit status.

    Problems with the arguments, the model or the data print one line, ``error: ...``, and
    return 2; a non-finite loss or training state returns 1; a pre-empted run (SIGTERM/SIGUSR1) returns 143
    after saving ``last.ckpt``.
    """
    args = expand_aliases(sys.argv[1:] if argv is None else argv, aliases)
    # We pass the expanded sys.argv on purpose (and keep sys.argv: DDP reruns it in each process).
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # The seed is in config.yaml; its log line would come before a one-line error.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    try:
        cli = VTCLI(task, args)
        cli.fit()
    except (ArgumentError, ValueError, FileNotFoundError) as err:  # DatasetError is a ValueError
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except SIGTERMException:
        print("pre-empted: last.ckpt saved; resume with --ckpt_path last", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def _one_line(err: BaseException) -> str:
    """The root cause of ``err``, on one line, after the config key it concerns.

    jsonargparse wraps an error raised while building a class (a `DatasetError` of a missing
    root) in a multi-line summary of every type it tried; the innermost cause is the useful part.
    """
    chain = [err]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    key = re.match(r'Parser key "([^"]+)"', str(err))
    message = " ".join(str(chain[-1]).split())
    return f"{key.group(1)}: {message}" if key else message
