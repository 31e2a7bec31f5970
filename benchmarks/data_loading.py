"""Do the loaders keep up? Images/s delivered by the data pipelines versus images/s a VT-ResNet
trains on, at the same resolution and batch size, on this machine.

    python benchmarks/data_loading.py                      # 64x64, batch 32, vt_resnet18
    python benchmarks/data_loading.py --image-size 224 --batch-size 16 --batches 10

Loaders: the synthetic datamodule (generation + augmentation) and the ImageNet datamodule
(JPEG decoding + random-resized crop + flip) reading a generated ImageFolder of JPEGs in a
temporary folder, each with 0 and 2 workers. Training: forward, backward and SGD step of the
model on one fixed batch, channels-last unless ``--no-channels-last`` (the task's default). A
ratio above 1 means the loader is faster than training consumes.

The loader's cost per image is its CPU time in the main process on one thread (as a worker
runs): on a machine whose cores the model already uses, that is what the loader takes from
training wherever it runs, and, with 0 workers (the synthetic datamodule's default), it adds to
every step; it is printed as a share of the training step's time per image.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from synthetic_imagefolder import write_split

from vt.data import ImageNetDataModule, SyntheticDataModule, SyntheticShapes, VTDataModule

FOLDER_CLASSES = 4
# Decoding cost grows with pixels: JPEGs at roughly ImageNet's mean size (about 400x350).
FOLDER_IMAGE_SIZE = 384


def images_per_second(batches: Iterable[dict[str, torch.Tensor]], count: int) -> float:
    """Rate over ``count`` batches, after one batch of warm-up (worker start, first decode)."""
    iterator = iter(batches)
    next(iterator)
    start, seen = time.perf_counter(), 0
    for _ in range(count):
        seen += len(next(iterator)["image"])
    return seen / (time.perf_counter() - start)


def loader_rate(datamodule: VTDataModule, count: int) -> float:
    datamodule.setup("fit")
    return images_per_second(datamodule.train_dataloader(), count)


def cpu_seconds_per_image(datamodule: VTDataModule, count: int) -> float:
    """CPU seconds per image of a 0-worker loader on one thread, over ``count`` batches after one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        datamodule.setup("fit")
        iterator = iter(datamodule.train_dataloader())
        next(iterator)
        start, seen = time.process_time(), 0
        for _ in range(count):
            seen += len(next(iterator)["image"])
        return (time.process_time() - start) / seen
    finally:
        torch.set_num_threads(threads)


def write_image_folder(root: Path, images_per_class: int) -> None:
    """An ImageNet-layout folder of JPEGs (synthetic scenes, so they compress like photos).

    ``images_per_class`` training images per class; one validation image per class.
    """
    for split, count in (("train", images_per_class * FOLDER_CLASSES), ("val", FOLDER_CLASSES)):
        scenes = SyntheticShapes(count, FOLDER_IMAGE_SIZE, num_classes=FOLDER_CLASSES, split=split)
        write_split(scenes, root / split, quality=90)


def training_rate(model_name: str, image_size: int, batch_size: int, count: int, channels_last: bool) -> float:
    """Images/s of forward + backward + SGD step on one fixed batch."""
    from vt.models import create_model

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(model_name, num_classes=10).train().to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch_size, 3, image_size, image_size).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch_size,))

    def steps() -> Iterable[dict[str, torch.Tensor]]:
        while True:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
            yield {"image": images}

    return images_per_second(steps(), count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--model", default="vt_resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="train in channels-last memory format (the task's default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    common = {"image_size": args.image_size, "batch_size": args.batch_size}
    images_needed = (args.batches + 1) * args.batch_size

    rates: dict[str, float] = {}
    costs: dict[str, float] = {}
    train_args = (args.model, args.image_size, args.batch_size, args.batches, args.channels_last)
    with tempfile.TemporaryDirectory() as tmp:
        write_image_folder(Path(tmp), images_per_class=-(-images_needed // FOLDER_CLASSES))
        train = training_rate(*train_args)
        for workers in (0, 2):
            loaders = {
                "synthetic": SyntheticDataModule(**common, num_workers=workers, num_train=images_needed),
                f"ImageFolder JPEGs ({FOLDER_IMAGE_SIZE}px)": ImageNetDataModule(tmp, **common, num_workers=workers),
            }
            for name, datamodule in loaders.items():
                rates[f"{name} loader, {workers} workers"] = loader_rate(datamodule, args.batches)
                if workers == 0:
                    costs[name] = cpu_seconds_per_image(datamodule, args.batches)
    # Timed again after the loaders and the faster kept, so that a burst of load from elsewhere on
    # the machine during one measurement never flatters the loaders.
    train = max(train, training_rate(*train_args))
    print(
        f"{args.model} training step, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"{args.threads} threads, {'channels-last' if args.channels_last else 'NCHW'}: {train:.1f} images/s"
    )
    for name, rate in rates.items():
        print(f"{name}: {rate:.0f} images/s = {rate / train:.1f}x training")
    for name, cost in costs.items():
        print(f"{name} loader: {cost * 1e3:.1f} ms of CPU per image (one thread) = {cost * train:.0%} of "
              f"the training step's {1e3 / train:.0f} ms per image")


if __name__ == "__main__":
    main()
