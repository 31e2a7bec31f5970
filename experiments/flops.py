"""Reproduce the paper's efficiency tables with fvcore (method §5).

    python experiments/flops.py                    # classification table + Table 1 stage reductions
    python experiments/flops.py --ablations        # plus the §5.1 ablation table
    python experiments/flops.py --task seg         # segmentation table (method §5.2)
    python experiments/flops.py --format csv
"""

from __future__ import annotations

import argparse
import sys
import warnings

from vt.flops import (
    COUNTING_NOTE,
    TABLE_FORMATS,
    ablation_table,
    classification_table,
    format_table,
    segmentation_table,
    stage_table,
)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["cls", "seg"], default="cls")
    parser.add_argument("--format", choices=TABLE_FORMATS, default="markdown")
    parser.add_argument("--size", type=int, default=224, help="classification input size")
    parser.add_argument("--ablations", action="store_true", help="also print the ablation table")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.task == "cls":
        body = classification(args.format, args.size, args.ablations)
    else:
        body = segmentation(args.format)
    print(body)
    print()
    print(COUNTING_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
