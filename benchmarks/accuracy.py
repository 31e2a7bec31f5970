"""Is VT better than ResNet on my data? Train classifiers under one recipe and budget, over seeds.

    python benchmarks/accuracy.py --models resnet18 vt_resnet18 --seeds 3
    python benchmarks/accuracy.py --models resnet18 vt_resnet18 "vt_resnet18:num_tokens=32,literal_tokenizer=true" \\
        --seeds 5 --epochs 8 --num-classes 10 --json runs/accuracy.json
    python benchmarks/accuracy.py --models resnet34 vt_resnet34 --seed-list 0 1 2 \\
        --data imagefolder --data-dir /data/my_images --image-size 224 --batch-size 64 \\
        --epochs 30 --recipe standard --num-workers 8
    python benchmarks/accuracy.py --models resnet18 vt_resnet18 --seed-list 3 4 --json runs/more.json
    python benchmarks/accuracy.py --merge runs/accuracy.json runs/more.json --models vt_resnet18 resnet18

``--merge`` trains nothing: it prints the table of runs saved by earlier ``--json`` runs of the
same setting (say, seeds added later), and refuses files trained differently.

Each model spec is a registered classifier, optionally followed by builder options,
``NAME:key=value,key=value`` (values read as YAML: ``32``, ``true``, ``0.1``, ``filter``); the spec
string is the label of its row. A key the builder does not take but the training task does
(``vt_resnet18:token_diversity=1``, see `TASK_OPTIONS`) goes to the task. Every spec trains with the same LightningModule as
``experiments/cls.py`` (``vt.tasks.ClassificationTask``: the recipe's optimizer, schedule stretched
over the run, augmentation and regularisation), on the same datamodule and budget (``--epochs``,
or ``--max-steps``), once per seed. Runs are interleaved by seed (seed 0: every model, then seed
1: every model, ...), so a slow spell of a shared machine falls on all models alike.

The table has one row per spec: final validation top-1 as mean ± the 95 % Student-t interval over
seeds (``t_{0.975, n-1} * sd / sqrt(n)``), the per-seed values, the paired difference to the
first spec (per-seed differences, same interval; seeds share data order, so pairing removes that
part of the noise), fvcore GFLOPs at the run's image size and parameters (``vt.flops``, the model
as built for the run's classes), and training images/s. ``--json`` also writes every run's raw
numbers. Overlapping intervals do not prove two models equal, and 3 seeds give wide ones
(t = 4.30 at n = 3): add seeds before reading much into a difference of a point or two.

Seeds. The *data* is fixed across seeds: synthetic images are generated from ``--data-seed``
(an ImageFolder is what it is), and the validation set is the same for every run. The *training
seed* (``lightning.seed_everything``) fixes the model's initialisation and dropout, and it also
becomes the datamodule's shuffle seed, so each seed sees its own order of the training images and
its own flips (`vt.data.base.EpochSampler` derives both from the datamodule's ``seed`` and the
epoch, not from the global generator, hence the harness sets it explicitly). Two models at the
same seed see the same order.

Timing. images/s is measured over the training steps with data loading included: the time between
the ends of consecutive training batches, summed over the run, so each epoch's first batch (loader
start-up, first-step allocations) and validation are left out; ``seconds`` in the JSON is the
whole run, final validation included. The harness leaves ``torch.set_num_threads`` at its
default; on a machine shared with other jobs images/s varies from run to run (the interleaving
keeps the comparison fair, the absolute numbers are not).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from vt.analysis import module_token_diversity
from vt.data import ImageNetDataModule, SyntheticDataModule, VTDataModule
from vt.data.synthetic import LABEL_KINDS
from vt.flops import count_image_model, format_table
from vt.models import list_models
from vt.models.registry import builder_signature
from vt.tasks import CLASSIFICATION_RECIPES, ClassificationTask
from vt.tasks.recipes import resolve_recipe

# Two-sided 95 % Student-t quantiles, t_{0.975, df} for df = 1..30.
T_975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)
Z_975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``: the table up to 30 degrees of freedom, a Cornish-Fisher expansion beyond.

    The expansion (Abramowitz & Stegun 26.7.5, four terms) is within 1e-7 of the exact quantile
    from df = 30 on, far below what a handful of seeds can resolve.
    """
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom (2 values), got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_interval(values: list[float]) -> tuple[float, float]:
    """``(mean, half_width)`` of the 95 % Student-t interval of the mean: ``t * sd / sqrt(n)``.

    ``sd`` is the sample standard deviation (n - 1). One value has no interval: half-width NaN.
    """
    if not values:
        raise ValueError("t_interval needs at least one value")
    mean = statistics.fmean(values)
    n = len(values)
    if n == 1:
        return mean, math.nan
    return mean, t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n)


@dataclass(frozen=True)
class ModelSpec:
    """A row of the table: ``label`` as given, the registered ``name`` and its builder ``options``."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)


# ClassificationTask arguments a spec may set: the training objective's own knobs. The recipe,
# learning rate and batch are the harness's (the same for every row), so they are not here.
TASK_OPTIONS = ("token_diversity", "token_overlap_floor")


def parse_model_spec(text: str) -> ModelSpec:
    """``"vt_resnet18:num_tokens=32,literal_tokenizer=true"`` -> its `ModelSpec`.

    Values are read with ``yaml.safe_load`` (so ``32`` is an int, ``true`` a bool, ``filter`` a
    string). Raises a one-line ``ValueError`` for an unknown classifier, a malformed or repeated
    option, or an option its builder does not take. A value cannot contain a comma.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    models = list_models("classification")
    if name not in models:
        raise ValueError(f"unknown classifier {name!r} in {text!r}; choose from {', '.join(models)}")
    named = list(builder_signature(name).parameters)
    options: dict[str, Any] = {}
    task_options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"option {item!r} in {text!r} is not key=value")
        if key in options or key in task_options:
            raise ValueError(f"option {key!r} is given twice in {text!r}")
        # The datamodule decides the classes; the recipe decides drop_path/dropout (see --recipe).
        if key == "num_classes":
            raise ValueError(f"{text!r}: num_classes comes from the data, not from the model spec")
        if key in TASK_OPTIONS and key not in named:
            task_options[key] = yaml.safe_load(value)
            continue
        if key not in named:
            raise ValueError(f"{name!r} does not take {key!r}; its builder takes: {', '.join(named)}, "
                             f"and the task: {', '.join(TASK_OPTIONS)}")
        options[key] = yaml.safe_load(value)
    return ModelSpec(text, name, options, task_options)


class TrainThroughput(Callback):
    """Images/s over the training steps, data loading included.

    The interval between the ends of consecutive training batches covers fetching the batch and
    the step (the task's ``_check_finite`` reads the loss each step, so CUDA is synchronised).
    Each epoch's first batch is left out (loader start-up, and the gap across validation), as the
    task's own ``train/images_per_sec`` does.
    """

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._last: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.images += len(batch["image"])
            self.seconds += now - self._last
        self._last = now

    @property
    def images_per_sec(self) -> float | None:
        """``None`` when no epoch had two batches (nothing was measured)."""
        return self.images / self.seconds if self.seconds > 0 else None


def make_datamodule(args: argparse.Namespace, seed: int) -> VTDataModule:
    """The run's datamodule: data fixed by ``--data-seed``, shuffle and augmentation by ``seed``."""
    augmentation = resolve_recipe(CLASSIFICATION_RECIPES, args.recipe).augmentation
    common: dict[str, Any] = dict(
        image_size=args.image_size, batch_size=args.batch_size, recipe=augmentation, seed=args.data_seed
    )
    if args.num_workers is not None:
        common["num_workers"] = args.num_workers
    dm: VTDataModule
    if args.data == "synthetic":
        extra: dict[str, Any] = dict(num_train=args.num_train, num_val=args.num_val, num_classes=args.num_classes)
        # Passed only when asked for, so the harness runs on a SyntheticDataModule without the option.
        if args.objects != 1:
            extra["objects"] = args.objects
        if args.label != "largest":
            extra["label"] = args.label
        dm = SyntheticDataModule(**common, **extra)
    else:
        dm = ImageNetDataModule(root=args.data_dir, min_crop_area=args.min_crop_area, **common)
    # The datamodule's one seed does two jobs: for generated data it fixes the images, and it
    # seeds the training order and augmentation (EpochSampler, at each train_dataloader call).
    # Building the splits now bakes in the data seed; setup() never rebuilds them, so switching
    # the seed afterwards changes the order and flips alone.
    dm.setup("fit")
    dm.seed = seed
    return dm


def _trainer(args: argparse.Namespace, **overrides: Any) -> L.Trainer:
    kwargs: dict[str, Any] = dict(
        accelerator=args.accelerator, devices=1, max_epochs=args.epochs,
        max_steps=args.max_steps if args.max_steps is not None else -1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
        # None leaves torch's setting alone; True asks for deterministic kernels (slower on GPU).
        deterministic=True if args.deterministic else None,
        precision=args.precision,
    )
    return L.Trainer(**(kwargs | overrides))


_COMPLEXITY: dict[tuple[str, int, int], tuple[float, float]] = {}


def run_one(spec: ModelSpec, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Trains ``spec`` at ``seed`` under ``args``' recipe and budget; returns the run's numbers.

    Keys: ``model`` (the spec's label), ``name``, ``options``, ``seed``, ``top1`` and ``top5``
    (final validation accuracy in [0, 1], of the final weights, or their EMA if the recipe keeps
    one), ``val_loss`` (plain cross-entropy), ``images_per_sec`` (training, see
    `TrainThroughput`; ``None`` if unmeasured), ``seconds`` (the whole run), ``steps``,
    ``image_size``, ``gflops`` and ``mparams``.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    dm = make_datamodule(args, seed)
    task = ClassificationTask(
        name=spec.name, num_classes=dm.num_classes, batch_size=args.batch_size, recipe=args.recipe,
        lr=args.lr, options=dict(spec.options), **spec.task_options,
    )
    # Counted once per spec on the model as built for this data (its classifier's width), before
    # it moves to an accelerator; tracing draws no random numbers, so it does not shift the seed.
    key = (spec.label, args.image_size, dm.num_classes)
    if key not in _COMPLEXITY:
        c = count_image_model(task.model, args.image_size)
        _COMPLEXITY[key] = (c.gflops, c.mparams)
    gflops, mparams = _COMPLEXITY[key]

    throughput = TrainThroughput()
    start = time.perf_counter()
    # No validation during training: the budget goes to training, and the score is that of the
    # final weights even when --max-steps stops mid-epoch.
    trainer = _trainer(args, callbacks=[throughput], limit_val_batches=0)
    trainer.fit(task, datamodule=dm)
    (metrics,) = _trainer(args).validate(task, datamodule=dm, verbose=False)
    seconds = time.perf_counter() - start
    return {
        **_token_stats(task, dm),
        "model": spec.label, "name": spec.name, "options": spec.options, "task_options": spec.task_options,
        "seed": seed,
        "top1": float(metrics["val/acc1"]), "top5": float(metrics["val/acc5"]), "val_loss": float(metrics["val/loss"]),
        "images_per_sec": throughput.images_per_sec, "seconds": seconds, "steps": trainer.global_step,
        "image_size": args.image_size, "gflops": gflops, "mparams": mparams,
    }


def _token_stats(task: ClassificationTask, dm: VTDataModule) -> dict[str, Any]:
    """What the trained VT stage's tokens do on the first validation batch (empty for ResNets):
    per module, ``vt.analysis.TokenDiversity`` as a dict, under ``"tokens"``."""
    model = task.model
    if not hasattr(model, "forward_modules"):
        return {}
    images = next(iter(dm.val_dataloader()))["image"]
    model.eval()
    stats = module_token_diversity(model, images.to(task.device))
    return {"tokens": [dataclasses.asdict(s) for s in stats]}


def _token_cell(runs: list[dict[str, Any]]) -> str:
    """Last VT module, mean over seeds: attention-map cosine, distinct argmax pixels, token cosine."""
    last = [r["tokens"][-1] for r in runs if r.get("tokens")]
    if not last:
        return "—"
    mean = lambda key: statistics.fmean(t[key] for t in last)  # noqa: E731
    return (f"{mean('attention_cosine'):.2f} / {mean('distinct_argmax'):.1f} of {last[0]['num_maps']} "
            f"({last[0]['num_pixels']} px) / {mean('token_cosine'):.2f}")


def _pct(mean: float, half: float) -> str:
    return f"{100 * mean:.1f}" + ("" if math.isnan(half) else f" ± {100 * half:.1f}")


def summarise(results: list[dict[str, Any]]) -> str:
    """The markdown table of ``results`` (`run_one` dicts): one row per model, in first-seen order."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    for runs in by_model.values():
        runs.sort(key=lambda r: r["seed"])
    first_label, first_runs = next(iter(by_model.items()))
    first = {r["seed"]: r["top1"] for r in first_runs}
    size = results[0]["image_size"]
    seeds = sorted({r["seed"] for r in results})
    header = [
        "model", "val top-1 %", f"per seed ({', '.join(map(str, seeds))})", f"Δ top-1 vs {first_label} (paired)",
        f"GFLOPs @ {size}px", "params (M)", "train img/s",
        "last VT module: map cosine / distinct argmax / token cosine",
    ]
    rows = []
    for label, runs in by_model.items():
        top1 = [r["top1"] for r in runs]
        if label == first_label:
            delta = "—"
        else:
            diffs = [r["top1"] - first[r["seed"]] for r in runs if r["seed"] in first]
            delta = "—" if not diffs else ("+" if statistics.fmean(diffs) >= 0 else "") + _pct(*t_interval(diffs))
        speeds = [r["images_per_sec"] for r in runs if r["images_per_sec"] is not None]
        rows.append([
            label, _pct(*t_interval(top1)), ", ".join(f"{100 * v:.1f}" for v in top1), delta,
            f"{runs[0]['gflops']:.3f}", f"{runs[0]['mparams']:.2f}",
            f"{statistics.fmean(speeds):.0f}" if speeds else "n/a",
            _token_cell(runs),
        ])
    n = {len(runs) for runs in by_model.values()}
    lines = [
        format_table(header, rows),
        "",
        f"val top-1: mean ± 95 % Student-t interval over {'/'.join(map(str, sorted(n)))} seeds "
        "(t_{0.975,n-1} · sd / √n); Δ: the same over per-seed differences to the first row. "
        "img/s: training steps, data loading included, mean over seeds (varies on a shared machine). "
        "Token columns (`vt.analysis.token_diversity`, first validation batch, mean over seeds): mean "
        "pairwise cosine of the tokenizer's attention maps, distinct argmax pixels, mean pairwise "
        "cosine of the output tokens.",
    ]
    return "\n".join(lines)


def _machine() -> str:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    threads = torch.get_num_threads()
    return f"{os.cpu_count()} CPUs, {threads} torch threads{gpu}, torch {torch.__version__}, load {load}"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[ModelSpec], list[int]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", metavar="SPEC",
                   help="NAME or NAME:key=value,... (builder options, YAML values); e.g. resnet18 vt_resnet18. "
                        "With --merge: the rows to show, in this order (default: all, first seen first)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=3, help="train seeds 0..N-1 (default 3)")
    seeds.add_argument("--seed-list", type=int, nargs="+", metavar="SEED", help="these training seeds instead")
    p.add_argument("--data", choices=["synthetic", "imagefolder"], default="synthetic")
    p.add_argument("--data-dir", help="imagefolder: root holding train/<class>/* and val/<class>/*")
    p.add_argument("--data-seed", type=int, default=0,
                   help="synthetic: the generated images, the same for every training seed")
    p.add_argument("--image-size", type=int, default=None, help="default: 64 synthetic, 224 imagefolder")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10, help="synthetic shape classes (2-13)")
    p.add_argument("--num-train", type=int, default=2048, help="synthetic training images")
    p.add_argument("--num-val", type=int, default=512, help="synthetic validation images")
    p.add_argument("--objects", type=int, default=1, help="synthetic: objects per image")
    p.add_argument("--label", choices=LABEL_KINDS, default="largest",
                   help="synthetic: the label names the largest shape, or the scene's set of shapes")
    p.add_argument("--min-crop-area", type=float, default=0.08,
                   help="imagefolder: smallest random-resized crop, a fraction of the image (ImageNet's 0.08)")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the datamodule's)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (before --epochs ends)")
    p.add_argument("--recipe", choices=list(CLASSIFICATION_RECIPES), default="synthetic",
                   help="optimizer, schedule, regularisation and augmentation (vt.tasks.recipes)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate at the recipe's reference batch (scaled linearly to --batch-size)")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu")
    p.add_argument("--deterministic", action="store_true", help="Trainer(deterministic=True): reproducible GPU kernels")
    p.add_argument("--precision", default="32-true", help="--trainer.precision of every run: 32-true, bf16-mixed, ...")
    p.add_argument("--json", metavar="PATH", help="also write every run's numbers here")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="train nothing: the table of the runs in these --json files (e.g. more seeds added later)")
    args = p.parse_args(argv)
    if args.merge:
        return args, [], []
    if not args.models:
        p.error("--models is required (unless --merge)")

    try:
        specs = [parse_model_spec(text) for text in args.models]
    except ValueError as err:
        p.error(str(err))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        p.error(f"--models: a spec is given twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    seed_list = args.seed_list if args.seed_list is not None else list(range(args.seeds))
    if not seed_list or len(set(seed_list)) != len(seed_list):
        p.error("--seeds must be at least 1, and --seed-list must not repeat a seed")
    if args.data == "imagefolder" and not args.data_dir:
        p.error("--data imagefolder needs --data-dir")
    if args.objects != 1 and "objects" not in inspect.signature(SyntheticDataModule).parameters:
        p.error("--objects: this vt's SyntheticDataModule has no objects option (one object per image)")
    if args.image_size is None:
        args.image_size = 64 if args.data == "synthetic" else 224
    return args, specs, seed_list


# What makes two runs comparable: everything but the seeds, the models and where the run went.
SAME_RECIPE = ("data", "data_dir", "data_seed", "image_size", "batch_size", "num_classes", "num_train", "num_val",
               "objects", "label", "epochs", "max_steps", "recipe", "lr", "precision", "min_crop_area")
CONFIG_DEFAULTS = {"precision": "32-true", "min_crop_area": 0.08, "label": "largest"}  # options added after some files were written


def canonical_label(name: str, options: dict[str, Any], task_options: dict[str, Any]) -> str:
    """The spec string of a model, less the options that only repeat a default.

    ``vt_resnet18:queries=both`` and ``vt_resnet18`` build the same model today, so their runs
    are one row. Defaults are this code's: runs saved by a version with other defaults are not
    comparable anyway.
    """
    builder = {k: p.default for k, p in builder_signature(name).parameters.items()}
    task = {k: p.default for k, p in inspect.signature(ClassificationTask.__init__).parameters.items()}
    kept = [(k, v) for k, v in options.items() if builder.get(k, inspect.Parameter.empty) != v]
    kept += [(k, v) for k, v in task_options.items() if task.get(k, inspect.Parameter.empty) != v]
    text = lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()  # noqa: E731
    return name + (":" + ",".join(f"{k}={text(v)}" for k, v in kept) if kept else "")


def merge(paths: list[str], models: list[str] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shared config and the runs of several ``--json`` files, ``models`` first, in that order.

    Runs are labelled by `canonical_label`, and so are ``models``. A ``ValueError`` (one line) if
    the files differ in anything but seeds and models, or hold the same model and seed twice.
    """
    config: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for path in paths:
        try:
            with open(path) as f:
                saved = json.load(f)
            current = {key: saved["config"].get(key, CONFIG_DEFAULTS.get(key)) for key in SAME_RECIPE}
            file_runs = [run for run in saved["runs"] if run["model"] and run["seed"] is not None]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a file written by benchmarks/accuracy.py --json ({err!r})") from None
        if not file_runs:
            raise ValueError(f"{path} holds no runs")
        if config is None:
            config = current
        elif current != config:
            differ = ", ".join(f"{k}: {config[k]!r} vs {current[k]!r}" for k in SAME_RECIPE if current[k] != config[k])
            raise ValueError(f"{path} was trained differently from {paths[0]} ({differ}); merge runs of one setting only")
        for run in file_runs:
            spec = parse_model_spec(run["model"])
            run = run | {"model": canonical_label(spec.name, spec.options, spec.task_options)}
            key = (run["model"], run["seed"])
            if key in seen:
                raise ValueError(f"{path}: seed {run['seed']} of {run['model']} is in the merged files twice")
            seen.add(key)
            runs.append(run)
    assert config is not None
    if models:
        models = [canonical_label(s.name, s.options, s.task_options) for s in map(parse_model_spec, models)]
        missing = [m for m in models if m not in {r["model"] for r in runs}]
        if missing:
            raise ValueError(f"--models: no runs of {', '.join(missing)} in the merged files")
        runs = sorted((r for r in runs if r["model"] in models), key=lambda r: models.index(r["model"]))
    return config, runs


def main(argv: list[str] | None = None) -> int:
    args, specs, seeds = parse_args(argv)
    if args.merge:
        try:
            config, runs = merge(args.merge, args.models)
        except (OSError, ValueError, KeyError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        seeds = sorted({r["seed"] for r in runs})
        print(f"merged {len(runs)} runs of {len(args.merge)} files: {config['data']} data, {config['image_size']}px, "
              f"recipe {config['recipe']}, {config['epochs']} epochs, seeds {', '.join(map(str, seeds))}")
        print()
        print(summarise(runs))
        return 0
    # Lightning's per-run banners (devices, seeds) and the few-workers hint would bury the progress lines.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    if args.recipe == "synthetic" and args.data != "synthetic":
        print("note: --recipe synthetic is the quick demo's; the paper's are --recipe standard|advanced",
              file=sys.stderr)
    # A wrong root, class count or model option fails now, in one line, not after hours of runs.
    try:
        dm = make_datamodule(args, seeds[0])
        for spec in specs:
            ClassificationTask(name=spec.name, num_classes=dm.num_classes, batch_size=args.batch_size,
                               recipe=args.recipe, lr=args.lr, options=dict(spec.options), **spec.task_options)
    except (ValueError, TypeError) as err:  # DatasetError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2

    if args.json:  # hours of runs must not end on a path that cannot be written
        try:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            open(args.json, "a").close()  # creates it, or leaves an existing file as it is
        except OSError as err:
            print(f"error: --json {args.json} cannot be written: {err.strerror or err}", file=sys.stderr)
            return 2
    print(f"machine: {_machine()}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    total = len(seeds) * len(specs)
    # Interleaved by seed: a busy spell on a shared machine slows every model, not just one.
    for seed in seeds:
        for spec in specs:
            r = run_one(spec, seed, args)
            results.append(r)
            speed = "n/a" if r["images_per_sec"] is None else f"{r['images_per_sec']:.0f}"
            print(
                f"[{len(results)}/{total}] seed {seed} {spec.label}: top-1 {r['top1']:.4f}, top-5 {r['top5']:.4f}, "
                f"{speed} img/s, {r['steps']} steps in {r['seconds']:.1f} s",
                file=sys.stderr, flush=True,
            )

    print(f"{args.data} data, {args.image_size}px, batch {args.batch_size}, recipe {args.recipe}"
          + (f" (lr {args.lr:g})" if args.lr is not None else "")
          + f", {args.epochs} epochs" + (f" (at most {args.max_steps} steps)" if args.max_steps else "")
          + f", seeds {', '.join(map(str, seeds))}")
    print()
    print(summarise(results))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        with open(args.json, "w") as f:
            json.dump({"config": config, "seeds": seeds, "machine": _machine(), "runs": results}, f, indent=2)
        print(f"\nraw results: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
