#!/usr/bin/env bash
# GPU readiness (issue 17): VT-ResNet against ResNet on CUDA with bf16, channels-last and torch.compile.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; at most ~8 minutes
#
# Assumes a fresh machine with one CUDA GPU and the repository's environment already installed
# (`pip install -e ".[dev]"` with a CUDA build of torch): `python` (or $PYTHON) must import `vt`
# and see the GPU. Nothing is downloaded. Runs, each under its own time limit:
#   1. benchmarks/throughput.py: the bare training step of ResNet-18/50 and VT-ResNet-18/50 at
#      224 px, batch 128, eager and compiled, bf16 autocast, channels-last;
#   2. benchmarks/train_loop.py: the real job (Trainer.fit, synthetic data in all cores but two,
#      logging) against the bare step of the same compiled channels-last model, bf16-mixed,
#      ResNet-50 pair at 224 px, batch 128;
# then prints one markdown table of both and the issue's check (VT-ResNet-50 bf16 training at least
# as fast as ResNet-50). Exits non-zero if a step fails or runs past its limit; the check itself
# is reported, not enforced. Logs stay in $OUT_DIR (default: a new temporary folder).
set -euo pipefail

PYTHON=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
WORKERS=${WORKERS:-$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))}
mkdir -p "$OUT_DIR"

"$PYTHON" -c 'import torch, vt; assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'

start=$SECONDS
echo "== 1/2 throughput.py (limit 240 s)"
timeout 240 "$PYTHON" benchmarks/throughput.py --device cuda --precision bf16 --compile \
    --pairs r18 r50 --modes train --train-batch 128 --repeats 20 --warmup 3 \
    --format csv | tee "$OUT_DIR/throughput.txt"

echo "== 2/2 train_loop.py (limit 200 s)"
timeout 200 "$PYTHON" benchmarks/train_loop.py --device cuda --precision bf16-mixed --compile \
    --pairs r50 --sizes 224 --batch 128 --steps 40 --warmup-steps 15 --repeats 2 --workers "$WORKERS" \
    --format csv | tee "$OUT_DIR/train_loop.txt"
echo "== done in $(( SECONDS - start )) s; logs in $OUT_DIR"

"$PYTHON" - "$OUT_DIR" <<'EOF'
"""One table from the two benchmarks' CSV tables, then the issue's check."""
import sys
from pathlib import Path

from vt.flops import format_table


def table(path: Path, first_column: str) -> list[list[str]]:
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith(first_column + ","))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split(","))
    return rows


out = Path(sys.argv[1])
rows = []
for pair, mode, batch, base, vt, best, median, *_ in table(out / "throughput.txt", "pair"):
    rows.append(["throughput.py (bare step)", pair, "224", mode, batch, base, vt, f"{best} ({median})", ""])
for pair, size, batch, base_bare, base_fit, base_over, vt_bare, vt_fit, vt_over, bare, fit in table(
        out / "train_loop.txt", "pair"):
    rows.append(["train_loop.py, compiled", pair, size, "bare step", batch, base_bare, vt_bare, bare, ""])
    rows.append(["train_loop.py, compiled", pair, size, "fit (job)", batch, base_fit, vt_fit, fit,
                 f"{base_over} / {vt_over}"])
header = ["benchmark", "pair", "size", "mode", "batch", "ResNet img/s", "VT-ResNet img/s",
          "VT/ResNet best (median)", "job overhead ResNet / VT"]
print(format_table(header, rows))
train = [r for r in rows if r[0].startswith("throughput") and r[1] == "R50" and r[3] == "train (compiled)"]
if train:
    ok = float(train[0][6]) >= float(train[0][5])
    print(f"\nVT-ResNet-50 bf16 compiled training {train[0][6]} img/s vs ResNet-50 {train[0][5]} img/s: "
          f"{'at least as fast' if ok else 'SLOWER'}")
EOF
