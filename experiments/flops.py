"""Reproduce the paper's efficiency tables with fvcore (method §5).

    python experiments/flops.py                    # classification table + Table 1 stage reductions
    python experiments/flops.py --ablations        # plus the §5.1 ablation table
    python experiments/flops.py --task seg         # segmentation table (method §5.2)
    python experiments/flops.py --format csv
    python experiments/flops.py --counter torch    # cross-check: PyTorch's FlopCounterMode beside fvcore
"""

from __future__ import annotations

import argparse
import sys
import warnings

from vt.flops import (
    COUNTING_NOTE,
    FVCORE_ONLY,
    TABLE_FORMATS,
    ablation_table,
    classification_table,
    counter_table,
    format_table,
    segmentation_table,
    stage_table,
)
from vt.models.resnet import ResNet


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def classification(fmt: str, size: int, ablations: bool) -> str:
    out = [f"## Classification at {size}x{size}, 1000 classes (paper Table 2 / Table 8; method §5.1)", ""]
    rows = [
        [r.model, r.source, f"{r.gflops:.3f}", f"{r.paper_gflops:.3f}", _pct(r.d_flops),
         f"{r.mparams:.2f}", f"{r.paper_mparams:.1f}", _pct(r.d_params)]
        for r in classification_table(size)
    ]
    out.append(format_table(["model", "paper row", "GFLOPs", "paper GFLOPs", "diff", "params (M)",
                             "paper params (M)", "diff"], rows, fmt))
    out += ["", "## Replaced stage: ResNet's last stage vs the VT stage (paper Table 1)", ""]
    rows = [
        [f"R{r.depth}", f"{r.resnet_stage_gflops:.3f}", f"{r.vt_stage_gflops:.3f}",
         f"{r.stage_reduction:.2f}x", f"{r.paper_stage_reduction:.1f}x",
         f"{r.resnet_stage_mparams:.2f}", f"{r.vt_stage_mparams:.2f}",
         f"{r.total_reduction:.2f}x", f"{r.paper_total_reduction:.2f}x"]
        for r in stage_table(size)
    ]
    out.append(format_table(["backbone", "ResNet stage GFLOPs", "VT stage GFLOPs", "stage reduction",
                             "paper", "ResNet stage params (M)", "VT stage params (M)",
                             "total reduction", "paper"], rows, fmt))
    if ablations:
        out += ["", "## Ablations (paper, default recipe; method §5.1), one parametrised VT-ResNet", ""]
        rows = [
            [r.variant, f"R{r.depth}", f"{r.mflops:.0f}", f"{r.paper_mflops:.0f}",
             _pct(r.mflops / r.paper_mflops - 1), f"{r.mparams:.2f}", f"{r.paper_mparams:.1f}",
             _pct(r.mparams / r.paper_mparams - 1)]
            for r in ablation_table(size)
        ]
        out.append(format_table(["variant", "model", "MFLOPs", "paper MFLOPs", "diff", "params (M)",
                                 "paper params (M)", "diff"], rows, fmt))
    return "\n".join(out)


def segmentation(fmt: str) -> str:
    out = ["## Segmentation: the paper's VT-FPN table (method §5.2)", "",
           "neck = the FPN / VT-FPN module on C2..C5; total = backbone + neck + semantic head; "
           "reductions are FPN / VT-FPN on the same backbone and input.", ""]
    rows = []
    for r in segmentation_table():
        vt = r.neck_reduction is not None
        rows.append([
            r.dataset, f"{r.height}x{r.width}", r.model,
            f"{r.neck_gflops:.3f}", f"{r.paper_neck_gflops:.1f}", _pct(r.d_neck),
            f"{r.total_gflops:.1f}", f"{r.paper_total_gflops:.1f}", _pct(r.d_total),
            f"{r.neck_reduction:.2f}x" if vt else "", f"{r.paper_neck_reduction:.2f}x" if vt else "",
            f"{r.total_reduction:.2f}x" if vt else "", f"{r.paper_total_reduction:.2f}x" if vt else "",
        ])
    out.append(format_table(["dataset", "input", "model", "neck GFLOPs", "paper", "diff", "total GFLOPs", "paper",
                             "diff", "neck reduction", "paper", "total reduction", "paper"], rows, fmt))
    return "\n".join(out)


def counters(task: str, fmt: str, size: int) -> str:
    """The efficiency-table models counted by fvcore and by PyTorch's FlopCounterMode (÷ 2)."""
    what = f"classification at {size}x{size} and its ablations" if task == "cls" else "segmentation"
    out = [f"## Two FLOP counters, {what} (one multiply-add = one FLOP)", "",
           "fvcore-only: the ops FlopCounterMode has no formula for (" + ", ".join(FVCORE_ONLY) + "); "
           "unexplained = fvcore - fvcore-only - FlopCounterMode / 2 (vt/flops/torch_counter.py).", ""]
    rows = [
        [r.model, f"{r.height}x{r.width}", f"{r.check.fvcore / 1e9:.4f}", f"{r.check.torch / 1e9:.4f}",
         f"{r.check.fvcore_only / 1e9:.4f}", f"{r.check.fvcore_only / r.check.fvcore:.2%}", str(r.check.residual)]
        for r in counter_table(task, size)
    ]
    out.append(format_table(["model", "input", "fvcore GFLOPs", "FlopCounterMode / 2 GFLOPs", "fvcore-only GFLOPs",
                             "share", "unexplained FLOPs"], rows, fmt))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["cls", "seg"], default="cls")
    parser.add_argument("--format", choices=TABLE_FORMATS, default="markdown")
    parser.add_argument("--size", type=int, default=224, help="classification input size")
    parser.add_argument("--ablations", action="store_true", help="also print the ablation table")
    parser.add_argument("--counter", choices=["fvcore", "torch"], default="fvcore",
                        help="torch: cross-check every model with PyTorch's FlopCounterMode instead")
    args = parser.parse_args(argv)
    if args.size < ResNet.min_input_size:  # the smallest input every table's model takes
        print(f"error: --size {args.size} is too small: the ResNets of the tables need at least "
              f"{ResNet.min_input_size} (their last map is H/32); the paper's is 224", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    if args.counter == "torch":
        body = counters(args.task, args.format, args.size)
    elif args.task == "cls":
        body = classification(args.format, args.size, args.ablations)
    else:
        body = segmentation(args.format)
    print(body)
    print()
    print(COUNTING_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
