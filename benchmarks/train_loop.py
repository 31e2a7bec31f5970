"""End to end: does the training job run as fast as the model step, and VT-ResNet beat ResNet there? (issue 17)

    python benchmarks/train_loop.py                                   # R18/34/50/101 at 224 and 64, CPU
    python benchmarks/train_loop.py --pairs r18 r50 --sizes 224       # some pairs, one size
    python benchmarks/train_loop.py --pairs r18 --sizes 64 --steps 4 --warmup-steps 2 --repeats 1   # smoke
    python benchmarks/train_loop.py --device cuda --precision bf16-mixed --compile

For each pair (ResNet-R, VT-ResNet-R) and image size, in one process, four runs are timed
alternately (order reversed every repeat; see ``_timing.py``):

* ``fit``: the real job, ``Trainer.fit`` of a `vt.tasks.ClassificationTask` on the
  `vt.data.SyntheticDataModule` for ``--steps`` steps, with what the job does every step (data
  loading in ``--workers`` workers, metrics, the non-finite checks, the schedule, logging to
  TensorBoard and CSV every 10 steps) and the task's memory format, compilation and precision;
* ``bare``: the same model (the task's own module: same memory format, compiled or not), the same
  optimizer object the task built, the same precision, on one fixed batch of the same data:
  ``zero_grad``, forward, loss, backward, step, nothing else.

Each run's rate is taken over its steps after ``--warmup-steps`` (loader start, compilation), from
the end of one step to the end of another, so it is the steady state and includes waiting for
data. Printed: images/s of each run (best repeat), the job's overhead over the bare step (median
over repeats of the paired ``fit / bare - 1``) and the VT/ResNet speed-up, bare and end to end
(on the best repeats, and the median of the per-repeat ratios). Not timed: validation and
checkpoints (once per epoch) and the progress bar.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from _timing import Ratio, machine, synchronize, tune_allocator
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from throughput import CLASSIFIER_PAIRS, autocast

from vt.data import SyntheticDataModule
from vt.flops import TABLE_FORMATS, format_table
from vt.tasks import ClassificationTask

PRECISIONS = {"32-true": "fp32", "bf16-mixed": "bf16"}  # Trainer flag -> throughput.autocast's name
DEMO_BATCH = {224: 16, 64: 32}  # the 224 px batch and the demo job's 64 px one
LOG_EVERY = 10  # the job's --trainer.log_every_n_steps (vt.cli)
NUM_CLASSES = 10


class StepClock(L.Callback):
    """The time at the end of every training step (after the device finished it)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        synchronize(pl_module.device)
        self.ends.append(time.perf_counter())


def seconds_per_step(ends: list[float], warmup: int) -> float:
    """Mean step time between the end of step ``warmup`` and the end of the last."""
    return (ends[-1] - ends[warmup - 1]) / (len(ends) - warmup)


@dataclass
class Job:
    """One model at one size: its task, data, and how to time a fit and a bare run of it."""

    task: ClassificationTask
    data: SyntheticDataModule
    args: argparse.Namespace
    device: torch.device
    logs: str
    optimizer: torch.optim.Optimizer | None = None
    batch: dict[str, torch.Tensor] | None = None

    def trainer(self, steps: int, callbacks: list[L.Callback]) -> L.Trainer:
        return L.Trainer(
            accelerator=self.device.type if self.device.type == "cpu" else "gpu",
            devices=[self.device.index or 0] if self.device.type == "cuda" else 1,
            precision=self.args.precision,
            max_steps=steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            log_every_n_steps=LOG_EVERY,
            logger=[TensorBoardLogger(self.logs, name=""), CSVLogger(self.logs, name="csv")],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_autolog_hparams=False,  # as the job (vt.cli): the task logs its own
            callbacks=callbacks,
        )

    def prepare(self) -> None:
        """An untimed short fit (compilation, first allocations); keeps its optimizer and a batch for `bare`."""
        trainer = self.trainer(2, [])
        trainer.fit(self.task, self.data)
        self.optimizer = trainer.optimizers[0]
        batch = next(iter(self.data.train_dataloader()))
        self.batch = {k: v.to(self.device) for k, v in batch.items()}

    def fit(self) -> float:
        clock = StepClock()
        self.trainer(self.args.steps, [clock]).fit(self.task, self.data)
        return seconds_per_step(clock.ends, self.args.warmup_steps)

    def bare(self) -> float:
        assert self.optimizer is not None and self.batch is not None, "call prepare() first"
        # Lightning's teardown leaves a GPU fit's model and optimizer state on the CPU: the model
        # comes back, and the state is rebuilt on the device during the warm-up steps.
        model, optimizer, task = self.task.model.to(self.device).train(), self.optimizer, self.task
        optimizer.state.clear()
        images, labels = self.batch["image"], self.batch["label"]
        ends = []
        for _ in range(self.args.steps):
            optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, PRECISIONS[self.args.precision]):
                loss = task.loss(model(images), labels)
            loss.backward()
            optimizer.step()
            if len(ends) in (self.args.warmup_steps - 1, self.args.steps - 1):
                synchronize(self.device)  # only where the clock is read: the bare loop never waits otherwise
            ends.append(time.perf_counter())
        return seconds_per_step(ends, self.args.warmup_steps)


def make_job(name: str, size: int, args: argparse.Namespace, device: torch.device, logs: str) -> Job:
    batch = args.batch or DEMO_BATCH.get(size, 16)
    task = ClassificationTask(
        name=name, num_classes=NUM_CLASSES, batch_size=batch, recipe=args.recipe,
        channels_last=args.channels_last, compile=args.compile,
    )
    data = SyntheticDataModule(
        image_size=size, batch_size=batch, num_workers=args.workers, num_train=batch * args.steps,
        num_val=batch, num_classes=NUM_CLASSES,
    )
    return Job(task, data, args, device, f"{logs}/{name}-{size}")


@dataclass
class Row:
    pair: str
    size: int
    batch: int
    times: dict[str, list[float]]  # "<base|vt> <fit|bare>" -> seconds per step, one per repeat

    def ips(self, key: str) -> float:
        return self.batch / min(self.times[key])

    def overhead(self, model: str) -> float:
        fit, bare = self.times[f"{model} fit"], self.times[f"{model} bare"]
        return statistics.median(f / b for f, b in zip(fit, bare)) - 1

    def speedup(self, run: str) -> Ratio:
        return Ratio(self.times[f"base {run}"], self.times[f"vt {run}"])

    def cells(self) -> list[str]:
        bare, fit = self.speedup("bare"), self.speedup("fit")
        return [
            self.pair, str(self.size), str(self.batch),
            f"{self.ips('base bare'):.1f}", f"{self.ips('base fit'):.1f}", f"{self.overhead('base'):+.1%}",
            f"{self.ips('vt bare'):.1f}", f"{self.ips('vt fit'):.1f}", f"{self.overhead('vt'):+.1%}",
            f"{bare.best:.3f} ({bare.median:.3f})", f"{fit.best:.3f} ({fit.median:.3f})",
        ]


HEADER = ["pair", "size", "batch", "ResNet bare img/s", "ResNet fit img/s", "ResNet job overhead",
          "VT bare img/s", "VT fit img/s", "VT job overhead", "VT/ResNet bare, best (median)",
          "VT/ResNet end to end, best (median)"]


def run_pair(depth: int, size: int, args: argparse.Namespace, device: torch.device, logs: str) -> Row:
    jobs = {"base": make_job(f"resnet{depth}", size, args, device, logs),
            "vt": make_job(f"vt_resnet{depth}", size, args, device, logs)}
    for job in jobs.values():
        job.prepare()
    runs = {f"{model} {run}": getattr(job, run) for model, job in jobs.items() for run in ("bare", "fit")}
    times: dict[str, list[float]] = {key: [] for key in runs}
    for repeat in range(args.repeats):
        for key in list(runs) if repeat % 2 == 0 else list(runs)[::-1]:
            times[key].append(runs[key]())
    return Row(f"R{depth}", size, jobs["base"].data.batch_size, times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", default=list(CLASSIFIER_PAIRS), choices=list(CLASSIFIER_PAIRS))
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 64], help="image sides")
    p.add_argument("--batch", type=int, default=None,
                   help=f"batch at every size (default: {', '.join(f'{b} at {s}' for s, b in DEMO_BATCH.items())})")
    p.add_argument("--steps", type=int, default=20, help="steps of every timed run")
    p.add_argument("--warmup-steps", type=int, default=5, help="first steps of each run left out of its rate")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind")
    p.add_argument("--workers", type=int, default=0,
                   help="loader workers of the fit (default: the synthetic datamodule's and the demo job's)")
    p.add_argument("--recipe", default="synthetic", help="the task's recipe (optimizer): synthetic, standard, advanced")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--precision", choices=list(PRECISIONS), default="32-true", help="--trainer.precision")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="--model.channels_last (the task's default: on)")
    p.add_argument("--compile", action="store_true", help="--model.compile true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--allocator", choices=["tuned", "system"], default="system",
                   help="tuned: keep freed memory in glibc's heap (_timing.tune_allocator), as throughput.py "
                        "does; the default is what the job gets")
    p.add_argument("--format", choices=TABLE_FORMATS, default="markdown")
    args = p.parse_args(argv)
    if not 1 <= args.warmup_steps < args.steps:
        p.error(f"--warmup-steps must be in 1..{args.steps - 1} (below --steps), got {args.warmup_steps}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = device.type == "cpu" and args.allocator == "tuned" and tune_allocator()
    L.seed_everything(0, verbose=False)
    print(f"machine: {machine(device)}")
    print(f"device {device}, {args.precision}, {'channels-last' if args.channels_last else 'NCHW'}, "
          f"{'compiled' if args.compile else 'eager'}, allocator {'tuned' if tuned else 'system'}, "
          f"{args.workers} loader workers, recipe {args.recipe}, {args.steps} steps per run "
          f"({args.warmup_steps} warm-up), {args.repeats} repeats")
    print("command: python benchmarks/train_loop.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as logs:
        for pair in args.pairs:
            for size in args.sizes:
                torch._dynamo.reset()  # each pair compiles the same forward code objects afresh
                row = run_pair(CLASSIFIER_PAIRS[pair], size, args, device, logs)
                rows.append(row)
                print(",".join(row.cells()), flush=True)
    print()
    print(format_table(HEADER, [r.cells() for r in rows], args.format))
    print(f"\nmachine at the end: {machine(device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
