"""Write the synthetic shapes as JPEG files in the ImageFolder layout, to test the real-data path.

    python benchmarks/synthetic_imagefolder.py /tmp/shapes --objects 3 --image-size 112
    python benchmarks/accuracy.py --models resnet18 vt_resnet18 --data imagefolder --data-dir /tmp/shapes \
        --image-size 112

Writes ``ROOT/train/<shape>/<index>.jpg`` and ``ROOT/val/<shape>/<index>.jpg`` (``--data imagenet``
reads that layout): the generated scenes go through the same JPEG decoding, resizing and
cropping as a user's photos, where ``--data synthetic`` hands the loader exact pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from vt.data import SyntheticShapes
from vt.data.synthetic import SHAPES


def write_split(dataset: SyntheticShapes, root: Path, quality: int) -> None:
    """Every sample of ``dataset`` as ``root/<class name>/<index>.jpg``."""
    names = list(SHAPES)[: dataset.num_classes]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for index in range(len(dataset)):
        sample = dataset[index]
        image = Image.fromarray(sample["image"].permute(1, 2, 0).numpy())
        image.save(root / names[sample["label"]] / f"{index:06d}.jpg", quality=quality)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="output folder (train/ and val/ are created in it)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--objects", type=int, default=1, help="shapes per image (the label is the largest)")
    parser.add_argument("--num-train", type=int, default=2048)
    parser.add_argument("--num-val", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args(argv)
    for split, count in (("train", args.num_train), ("val", args.num_val)):
        dataset = SyntheticShapes(count, args.image_size, args.num_classes, args.seed, split, objects=args.objects)
        write_split(dataset, args.root / split, args.quality)
    print(f"wrote {args.num_train} + {args.num_val} images to {args.root}/{{train,val}}/<class>/")


if __name__ == "__main__":
    main()
