"""Export a model to ONNX, TorchScript or torch.export, with dynamic batch, height and width.

    python experiments/export.py --model vt_resnet18 --format onnx --out vt_resnet18.onnx
    python experiments/export.py --checkpoint runs/seg/vtfpn_resnet50/version_0/checkpoints/last.ckpt \\
        --format exported --out vtfpn_resnet50.pt2
    python experiments/export.py --model resnet50 --checkpoint resnet50.pth --format torchscript --out r50.pt

Without --checkpoint the weights are random (for deployment tests). A vt training checkpoint
rebuilds its own model (--model optional); a plain state dict needs --model (and --num-classes).
After writing, the file is run beside eager PyTorch on random inputs of two batch sizes and two
image sizes and the largest max|diff| / max|eager| is printed (--no-check skips it; ONNX needs
onnxruntime: pip install -e ".[export]"). See vt/export.py for the formats and the size range.
Bad input prints one line, error: ..., and exits with status 2; a file that disagrees with eager
beyond the tolerance exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from vt.export import (
    FORMATS,
    INPUT_NAME,
    ONNX_EXPORTERS,
    OUTPUT_NAME,
    TOLERANCE,
    build_model,
    check_export,
    check_size,
    export_model,
    min_export_size,
)
from vt.models import model_task


def _options(text: str) -> dict:
    """``--options '{token_channels: 256}'``: builder options as a YAML/JSON mapping."""
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--options takes a mapping like '{{num_tokens: 32}}', got {text!r}")
    return value


def _writable(out: Path) -> None:
    """A one-line ``OSError`` now, before the export, if ``out`` cannot be written."""
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab"):  # appending changes nothing in a file that is there
            pass
        if not existed:
            out.unlink()
    except OSError as e:
        raise OSError(f"cannot write --out {out}: {e.strerror or e}; choose a writable path") from e


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registered model name (optional with a vt training checkpoint)")
    parser.add_argument("--checkpoint", help="a vt training checkpoint (.ckpt) or a plain state dict (.pth)")
    parser.add_argument("--num-classes", type=int, help="classes of a model built without a vt checkpoint")
    parser.add_argument("--options", type=_options, default={}, help="other builder options, '{num_tokens: 32}'")
    parser.add_argument("--image-size", type=int, default=224, help="example input traced (any larger/smaller "
                        "size still works, down to the model's minimum)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--onnx-exporter", choices=ONNX_EXPORTERS, default="torchscript",
                        help="torchscript: fast, deprecated by PyTorch; dynamo: torch.export-based (needs onnxscript)")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--no-check", action="store_true", help="do not compare the file with eager PyTorch")
    args = parser.parse_args(argv)
    # Loading reports go to the error line below; do not let logging's fallback print them too.
    logging.getLogger("vt").setLevel(logging.ERROR)
    try:
        model, name = build_model(args.model, args.checkpoint, args.num_classes, args.options)
        check_size(model, args.image_size, name)
        _writable(args.out)
        export_model(model, args.out, args.format, args.image_size, args.onnx_exporter)
        rows = [] if args.no_check else check_export(model, args.out, args.format, args.image_size)
    except (OSError, ValueError, ImportError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    least = min_export_size(model)
    out_axes = "(batch, classes, height, width)" if model_task(name) == "segmentation" else "(batch, classes)"
    print(f"wrote {args.out} ({args.format}, {args.out.stat().st_size / 1e6:.1f} MB): {name}, "
          f"input {INPUT_NAME} (batch, 3, height, width) with height, width >= {least}, "
          f"output {OUTPUT_NAME} {out_axes}")
    if rows:
        runner = {"onnx": "onnxruntime", "torchscript": "torch.jit.load", "exported": "torch.export.load"}[args.format]
        worst = max(r.error for r in rows)
        shapes = ", ".join(f"{'x'.join(map(str, r.shape))}: {r.error:.1e}" for r in rows)
        print(f"{runner} vs eager PyTorch, max|diff| / max|eager|: {shapes}")
        if worst > TOLERANCE:
            print(f"error: the exported file disagrees with eager PyTorch by {worst:.1e} > {TOLERANCE:.0e}",
                  file=sys.stderr)
            return 1
        print(f"agrees within {TOLERANCE:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
