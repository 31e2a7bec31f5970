"""Is channels-last faster than NCHW for the training step? (issue 17: the tasks' ``channels_last`` default)

    python benchmarks/memory_format.py                       # the demo's classifiers and the segmenters
    python benchmarks/memory_format.py --models resnet50 vt_resnet50 --size 224 --batch 16

For each model, in one process, the training step (forward, cross-entropy, backward, SGD step) in
NCHW and in channels-last (model and batch) is timed alternately (``_timing.interleave``), on the
process's CPU time with one thread by default (robust to other processes on a shared machine).
Prints the seconds per step of each (best repeat) and the channels-last speed-up, on the best
repeats and as the median of the per-repeat speed-ups.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _timing import CLOCKS, Ratio, interleave, machine
from torch import Tensor, nn

from vt.flops import TABLE_FORMATS, format_table
from vt.models import create_model, model_task

NUM_CLASSES = 10


def training_step(model: nn.Module, images: Tensor, target: Tensor, channels_last: bool) -> Callable[[], None]:
    """A step on a copy of ``model``, in ``channels_last`` or NCHW (model and images)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).train().to(memory_format=memory_format)
    images = images.contiguous(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), target, ignore_index=255).backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet34", "vt_resnet34", "fpn_resnet50", "vtfpn_resnet50"])
    p.add_argument("--size", type=int, default=None, help="image side (default: 64 classifiers, 256 segmenters)")
    p.add_argument("--batch", type=int, default=None, help="batch (default: 32 classifiers, 2 segmenters)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="cpu: process CPU time (one thread only)")
    p.add_argument("--format", choices=TABLE_FORMATS, default="markdown")
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu measures one thread: add --threads 1, or use --clock wall")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {machine(torch.device('cpu'))}")
    print("command: python benchmarks/memory_format.py " + " ".join(sys.argv[1:] if argv is None else argv))
    rows = []
    for name in args.models:
        classifier = model_task(name) == "classification"
        size = args.size or (64 if classifier else 256)
        batch = args.batch or (32 if classifier else 2)
        model = create_model(name, num_classes=NUM_CLASSES)
        images = torch.randn(batch, 3, size, size)
        target = torch.randint(0, NUM_CLASSES, (batch,) if classifier else (batch, size, size))
        steps = {f: training_step(model, images, target, f == "channels-last") for f in ("NCHW", "channels-last")}
        times = interleave(steps, args.repeats, args.warmup, torch.device("cpu"), args.clock)
        ratio = Ratio(times["NCHW"], times["channels-last"])
        rows.append([name, str(size), str(batch), f"{min(times['NCHW']):.3f}", f"{min(times['channels-last']):.3f}",
                     f"{ratio.best:.3f}", f"{ratio.median:.3f}"])
        print(",".join(rows[-1]), flush=True)
    header = ["model", "size", "batch", "NCHW s/step", "channels-last s/step", "speed-up (best)", "speed-up (median)"]
    print()
    print(format_table(header, rows, args.format))
    print(f"\nmachine at the end: {machine(torch.device('cpu'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
