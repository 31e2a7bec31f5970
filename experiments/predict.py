"""Predict with a trained checkpoint: top-5 classes of each image, or a mask per image.

    python experiments/predict.py --checkpoint runs/cls/resnet34/version_0/checkpoints/last.ckpt a.jpg b.png
    python experiments/predict.py --checkpoint runs/seg/vtfpn_resnet50/version_0/checkpoints/last.ckpt \\
        --out-dir masks person.jpg

Classifiers print the top-5 (``--top-k``) classes by the names the training datamodule gave them
(shape names, ImageNet wnids), or by index for a checkpoint without names. An image of the
training size is used as it is; any other is resized and centre-cropped as in ImageNet
evaluation (shorter side to size / 0.875, centre crop). Segmenters:
as in validation, the longer side is resized to the training size and the image padded to a
square; the predicted classes are brought back to the original resolution and written as 8-bit
PNGs of class ids (``--out-dir``).
The model has the run's averaged weights when it kept an EMA (`vt.load_model`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from vt.data.files import load_rgb
from vt.data.transforms import PadTo, classification_eval, finalize
from vt.inference import load_model, read_checkpoint
from vt.models import model_task


def classify(model: torch.nn.Module, image: tv_tensors.Image, size: int, names: list[str], k: int) -> str:
    """The top-``k`` classes of ``image`` as ``name (probability)``, best first."""
    fits = tuple(image.shape[-2:]) == (size, size)
    transform = v2.Compose(finalize()) if fits else classification_eval(size)
    batch = transform({"image": image})["image"].unsqueeze(0)
    probabilities = model(batch).softmax(dim=1)[0]
    top = probabilities.topk(min(k, len(probabilities)))
    return ", ".join(f"{names[i]} ({p:.1%})" for p, i in zip(top.values.tolist(), top.indices.tolist()))


def segment(model: torch.nn.Module, image: tv_tensors.Image, size: int) -> Image.Image:
    """The class id of every pixel of ``image``, at its own resolution, as an 8-bit PNG image.

    As in validation, the longer side is resized to ``size`` and the image padded to a square;
    the padding is cut off the logits before they are resized to the original resolution.
    """
    resized = v2.Resize(size=None, max_size=size, antialias=True)(image)
    height, width = resized.shape[-2:]
    batch = v2.Compose([PadTo(size), *finalize()])({"image": resized})["image"].unsqueeze(0)
    logits = model(batch)[..., :height, :width]
    logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
    return Image.fromarray(logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a vt training checkpoint (.ckpt)")
    parser.add_argument("images", nargs="+", help="image files (anything Pillow reads)")
    parser.add_argument("--top-k", type=int, default=5, help="classes printed per image")
    parser.add_argument("--out-dir", default="masks", help="where segmenters write <image stem>.png")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    try:
        info, _ = read_checkpoint(args.checkpoint)
        model = load_model(args.checkpoint, device=args.device)
        images = [load_rgb(path) for path in args.images]
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = info.image_size or 224
    with torch.inference_mode():
        for path, image in zip(args.images, images):
            image = image.to(args.device)
            if model_task(info.name) == "classification":
                names = info.class_names or [str(i) for i in range(info.model_args["num_classes"])]
                print(f"{path}: {classify(model, image, size, names, args.top_k)}")
            else:
                out = Path(args.out_dir) / f"{Path(path).stem}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                segment(model, image, size).save(out)
                print(f"{path}: mask written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
