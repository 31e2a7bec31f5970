"""Are VT-ResNets faster than the ResNets they replace, and VT-FPN than FPN? (issue 8)

    python benchmarks/throughput.py                                  # CPU, all pairs
    python benchmarks/throughput.py --pairs r18 r50 --repeats 15     # some pairs
    python benchmarks/throughput.py --compile                        # eager and torch.compile
    python benchmarks/throughput.py --device cuda --precision bf16 --compile

Pairs: (ResNet-R, VT-ResNet-R) for R in 18/34/50/101 at 224×224, and the (FPN, VT-FPN) necks of
the ResNet-50 segmenters on the C2..C5 maps of a 512×512 image. For each pair, in one process,
the two models are timed alternately (see ``_timing.py``) in:

* ``infer``: a forward pass in inference mode (``--batch``, ``--seg-batch``);
* ``train``: forward, loss, backward and an SGD step (``--train-batch``, ``--seg-train-batch``);
  cross-entropy on the logits, or the mean square of every pyramid level for the necks;
* ``stage``: what VT replaces, alone, inference: ResNet's last stage on the C4 map against the
  VT stage as the classifier runs it (last projector skipped), and FPN's 3×3 convolutions against
  VT-FPN's tokenizers + transformer + projectors on the merged pyramid.

Each row prints images/s of both (best call), the VT speed-up on the best calls and as the median
of the per-repeat speed-ups, fvcore's FLOPs ratio of the same two computations (the speed-up that
equal FLOP rates would give), the speed-up as a share of it, and the peak memory one call
allocates. CPU runs use channels-last and keep freed memory in the heap (``--allocator``) unless
told otherwise; ``--compile`` adds rows for ``torch.compile``d models and checks their outputs
against eager.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _timing import Ratio, interleave, machine, peak_memory, tune_allocator
from torch import Tensor, nn

from vt.flops import (
    TABLE_FORMATS,
    NeckOnMaps,
    NeckRefinement,
    TokensOnly,
    count,
    count_model,
    count_neck,
    feature_shapes,
    format_table,
)
from vt.models import create_model
from vt.nn import fold_batchnorm

CLASSIFIER_PAIRS = {"r18": 18, "r34": 34, "r50": 50, "r101": 101}
NECK_PAIRS = {"fpn": 50}


@dataclass
class Row:
    pair: str
    mode: str
    compiled: bool
    batch: int
    ratio: Ratio
    flops_ratio: float
    memory: tuple[int, int]
    max_diff: float | None = None

    def cells(self) -> list[str]:
        ips = [self.batch / min(t) for t in (self.ratio.baseline, self.ratio.vt)]
        return [
            self.pair, self.mode + (" (compiled)" if self.compiled else ""), str(self.batch),
            f"{ips[0]:.1f}", f"{ips[1]:.1f}", f"{self.ratio.best:.3f}", f"{self.ratio.median:.3f}",
            f"{self.flops_ratio:.3f}", f"{self.ratio.best / self.flops_ratio:.0%}",
            f"{self.memory[0] / 2**20:.0f} / {self.memory[1] / 2**20:.0f}",
        ]


HEADER = ["pair", "mode", "batch", "baseline img/s", "VT img/s", "speed-up (best)",
          "speed-up (median)", "FLOPs ratio", "speed-up / FLOPs ratio", "peak MiB (base / VT)"]


@dataclass
class Workload:
    """One mode of one pair: the two modules, their inputs, the batch and how a step runs."""

    mode: str
    modules: tuple[nn.Module, nn.Module]
    inputs: tuple[Tensor, ...]
    batch: int
    flops_ratio: float
    loss: Callable[[object], Tensor] | None = None  # training workloads only


def _format(t: Tensor, channels_last: bool) -> Tensor:
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t


def classifier_workloads(depth: int, args: argparse.Namespace, device: torch.device) -> list[Workload]:
    base, vt = create_model(f"resnet{depth}"), create_model(f"vt_resnet{depth}")
    flops = count_model(f"resnet{depth}", args.size).flops / count_model(f"vt_resnet{depth}", args.size).flops
    c4_size = (1, base.level_info[2].channels, args.size // 16, args.size // 16)
    stage_flops = count(base.layer4, torch.zeros(c4_size)).flops / count(
        TokensOnly(vt.layer4), torch.zeros(c4_size)).flops
    out: list[Workload] = []
    if "infer" in args.modes:
        x = torch.randn(args.batch, 3, args.size, args.size)
        out.append(Workload("infer", (base, vt), (x,), args.batch, flops))
    if "stage" in args.modes:
        c4 = torch.randn(args.batch, *c4_size[1:])
        out.append(Workload("stage", (base.layer4, TokensOnly(vt.layer4)), (c4,), args.batch, stage_flops))
    if "train" in args.modes:
        x = torch.randn(args.train_batch, 3, args.size, args.size)
        y = torch.randint(0, 1000, (args.train_batch,), device=device)
        out.append(Workload("train", (base, vt), (x,), args.train_batch, flops,
                            loss=lambda logits: F.cross_entropy(logits.float(), y)))
    return out


def neck_workloads(depth: int, args: argparse.Namespace, device: torch.device) -> list[Workload]:
    fpn, vtfpn = (create_model(f"{n}_resnet{depth}") for n in ("fpn", "vtfpn"))
    shapes = feature_shapes(fpn.backbone, args.seg_size, args.seg_size)
    necks = (NeckOnMaps(fpn.neck), NeckOnMaps(vtfpn.neck))
    names = necks[0].names
    flops = count_neck(fpn.neck, shapes) / count_neck(vtfpn.neck, shapes)

    def maps(batch: int) -> tuple[Tensor, ...]:
        return tuple(torch.randn(batch, *shapes[n][1:]) for n in names)

    with torch.no_grad():
        merged_shapes = [m.shape[1:] for m in fpn.neck.merge({n: t for n, t in zip(names, maps(1))})]
    refine = (NeckRefinement(fpn.neck), NeckRefinement(vtfpn.neck))
    refine_flops = (count(refine[0], *(torch.zeros(1, *s) for s in merged_shapes)).flops
                    / count(refine[1], *(torch.zeros(1, *s) for s in merged_shapes)).flops)
    out: list[Workload] = []
    if "infer" in args.modes:
        out.append(Workload("infer", necks, maps(args.seg_batch), args.seg_batch, flops))
    if "stage" in args.modes:
        merged = tuple(torch.randn(args.seg_batch, *s) for s in merged_shapes)
        out.append(Workload("stage", refine, merged, args.seg_batch, refine_flops))
    if "train" in args.modes:
        out.append(Workload("train", necks, maps(args.seg_train_batch), args.seg_train_batch, flops,
                            loss=lambda levels: sum(p.float().square().mean() for p in levels)))
    return out


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a step runs in: nothing for ``"fp32"``, bf16 autocast for ``"bf16"`` (``bf16-mixed``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _step(module: nn.Module, w: Workload, device: torch.device, precision: str) -> Callable[[], object]:
    inputs = w.inputs
    if w.loss is None:
        module.eval()

        def infer() -> object:
            with torch.inference_mode(), autocast(device, precision):
                return module(*inputs)

        return infer
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def train() -> object:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = w.loss(module(*inputs))
        loss.backward()
        opt.step()
        return loss

    return train


def _max_diff(a: object, b: object) -> float:
    ta = a if isinstance(a, (tuple, list)) else (a,)
    tb = b if isinstance(b, (tuple, list)) else (b,)
    return max(((x.float() - y.float()).abs().max() / y.float().abs().max().clamp_min(1e-12)).item()
               for x, y in zip(ta, tb))


def run_workload(pair: str, w: Workload, args: argparse.Namespace, device: torch.device,
                 compiled: bool) -> Row:
    # Inference times the deployed models: BatchNorms folded, on copies the training rows do not share.
    deployed = w.modules if w.loss is not None else tuple(fold_batchnorm(copy.deepcopy(m).eval()) for m in w.modules)
    modules = tuple(m.to(device) for m in deployed)
    if args.channels_last:
        modules = tuple(m.to(memory_format=torch.channels_last) for m in modules)
    w.inputs = tuple(_format(t.to(device), args.channels_last) for t in w.inputs)
    runners = modules
    max_diff = None
    if compiled:
        runners = tuple(torch.compile(m) for m in modules)
    steps = {name: _step(r, w, device, args.precision) for name, r in zip(("baseline", "vt"), runners)}
    if compiled and w.loss is None:
        eager = [_step(m, w, device, args.precision)() for m in modules]
        max_diff = max(_max_diff(steps[n](), e) for n, e in zip(("baseline", "vt"), eager))
    times = interleave(steps, args.repeats, max(args.warmup, 1 if compiled else 0), device, args.clock)
    memory = tuple(peak_memory(steps[n], device) for n in ("baseline", "vt"))
    return Row(pair, w.mode, compiled, w.batch, Ratio(times["baseline"], times["vt"]), w.flops_ratio,
               memory, max_diff)  # type: ignore[arg-type]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", default=[*CLASSIFIER_PAIRS, *NECK_PAIRS],
                   choices=[*CLASSIFIER_PAIRS, *NECK_PAIRS])
    p.add_argument("--modes", nargs="+", default=["infer", "stage", "train"], choices=["infer", "stage", "train"])
    p.add_argument("--batch", type=int, default=32, help="classification inference batch")
    p.add_argument("--train-batch", type=int, default=16, help="classification training batch")
    p.add_argument("--seg-batch", type=int, default=8, help="neck inference batch")
    p.add_argument("--seg-train-batch", type=int, default=4, help="neck training batch")
    p.add_argument("--size", type=int, default=224, help="classification input size")
    p.add_argument("--seg-size", type=int, default=512, help="segmentation input size")
    p.add_argument("--repeats", type=int, default=10, help="timed calls of each model")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each model first")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="models and 4-D inputs in channels-last memory format")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    p.add_argument("--compile-only", action="store_true", help="time torch.compile'd models only")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time, robust to other processes on a shared machine "
                        "(CPU device and --threads 1 only)")
    p.add_argument("--allocator", choices=["tuned", "system"], default="tuned",
                   help="tuned: keep freed memory in glibc's heap (CPU; see _timing.tune_allocator)")
    p.add_argument("--format", choices=TABLE_FORMATS, default="markdown")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    if args.clock == "cpu" and (device.type != "cpu" or args.threads != 1):
        raise SystemExit("--clock cpu measures one CPU thread: add --threads 1 (and --device cpu)")
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = device.type == "cpu" and args.allocator == "tuned" and tune_allocator()
    torch.manual_seed(0)
    print(f"machine: {machine(device)}")
    print(f"device {device}, {args.precision}, {'channels-last' if args.channels_last else 'contiguous (NCHW)'}, "
          f"allocator {'tuned' if tuned else 'system'}, {args.clock} clock, "
          f"{args.repeats} repeats after {args.warmup} warm-up")
    print("command: python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(flush=True)
    variants = [True] if args.compile_only else [False, True] if args.compile else [False]
    rows: list[Row] = []
    for pair in args.pairs:
        if pair in CLASSIFIER_PAIRS:
            workloads = classifier_workloads(CLASSIFIER_PAIRS[pair], args, device)
            label = f"R{CLASSIFIER_PAIRS[pair]}"
        else:
            workloads = neck_workloads(NECK_PAIRS[pair], args, device)
            label = f"FPN neck (R{NECK_PAIRS[pair]}, {args.seg_size}px)"
        torch._dynamo.reset()  # each pair compiles the same forward code objects afresh
        for w in workloads:
            for compiled in variants:
                row = run_workload(label, w, args, device, compiled)
                rows.append(row)
                note = "" if row.max_diff is None else f"  (compiled vs eager: max rel. diff {row.max_diff:.1e})"
                print(",".join(row.cells()) + note, flush=True)
    print()
    print(format_table(HEADER, [r.cells() for r in rows], args.format))
    diffs = [r.max_diff for r in rows if r.max_diff is not None]
    if diffs:
        print(f"\ntorch.compile vs eager, inference outputs: largest relative difference {max(diffs):.1e}")
    print(f"\nmachine at the end: {machine(device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
