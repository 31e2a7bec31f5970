"""How fast does this machine run the ops each last stage is made of, in fvcore FLOPs per second?

    python benchmarks/op_rates.py
    python benchmarks/op_rates.py --batch 32 --threads 2

The FLOPs ratio is the speed-up a VT stage would give if it ran at the same FLOP rate as the
ResNet stage it replaces. It does not, on a CPU, for a reason of the ops, not the code: ResNet's
last stage is 3×3 convolutions on a 7×7 map, which oneDNN computes with fewer multiplications
than fvcore counts (Winograd-style), so they run *above* the machine's dense matrix-multiply
rate; a VT stage is dense matrix multiplies (token-side linear layers, 1×1 convolutions,
attention) at or below that rate. This script measures each kind at the shapes VT-ResNet-18 and
ResNet-18 run at 224×224, one multiply-add = one FLOP, in inference mode, fp32, channels-last.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _timing import machine, tune_allocator
from torch import nn


def rate(fn: Callable[[], object], flops: float, repeats: int) -> float:
    """GFLOP/s of ``fn`` (best of ``repeats`` calls after two warm-up calls)."""
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()
    b, cl = args.batch, torch.channels_last
    print(machine(torch.device("cpu")))
    rows: list[tuple[str, str, float]] = []
    with torch.inference_mode():
        a, w = torch.randn(2048, 2048), torch.randn(2048, 2048)
        rows.append(("dense GEMM 2048×2048×2048", "the machine's matrix-multiply rate", rate(lambda: a @ w, 2048**3, args.repeats)))
        tokens, w = torch.randn(b * 16, 1024), torch.randn(1024, 512)
        rows.append((f"token GEMM ({b}·16)×1024×512", "VT: transformer, tokenizer, projector keys/values",
                     rate(lambda: tokens @ w, b * 16 * 1024 * 512, args.repeats)))
        x = torch.randn(b, 256, 14, 14).contiguous(memory_format=cl)
        conv1 = nn.Conv2d(256, 512, 1, bias=False).to(memory_format=cl)
        rows.append(("1×1 conv 256→512 on 14×14", "VT: projector queries and shortcut",
                     rate(lambda: conv1(x), b * 196 * 256 * 512, args.repeats)))
        x = torch.randn(b, 512, 7, 7).contiguous(memory_format=cl)
        conv3 = nn.Conv2d(512, 512, 3, padding=1, bias=False).to(memory_format=cl)
        rows.append(("3×3 conv 512→512 on 7×7", "ResNet-18's last stage",
                     rate(lambda: conv3(x), b * 49 * 512 * 512 * 9, args.repeats)))
    print(f"batch {b}, fp32, inference, one multiply-add = one FLOP\n")
    print("| op | where | GFLOP/s |\n|---|---|---|")
    for name, where, gflops in rows:
        print(f"| {name} | {where} | {gflops:.0f} |")


if __name__ == "__main__":
    main()
