"""How hard is the synthetic shapes set? A linear probe on pixels versus a small VT-ResNet.

The set should defeat a linear classifier on raw pixels (shape is not a linear function of pixel
values once position, scale, colours and textures vary) yet be learnt well above chance by a
VT-ResNet-18 in a couple of minutes on a CPU. Both run on the same generated split:

    python benchmarks/synthetic_difficulty.py                 # probe, then 2 minutes of VT-ResNet-18
    python benchmarks/synthetic_difficulty.py --minutes 0     # probe only
    python benchmarks/synthetic_difficulty.py --images 6000   # a fixed number of images, any speed

The probe gets its best shot: multinomial logistic regression, tried at several weight decays,
best validation accuracy reported. The network trains with plain torch (AdamW, warm-up and
cosine schedule over the budget, the datamodule's flip augmentation) and is scored on the same
validation images. On a machine shared with other jobs a time budget buys fewer images; the
printed images/s says how many it got, and ``--images`` fixes the amount of training instead.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from vt.data import SyntheticDataModule, SyntheticShapes
from vt.data.transforms import synthetic_eval

PROBE_WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2)
# AdamW gets a freshly initialised network off the ground within a few hundred steps, where SGD
# at the paper's settings barely moves from chance in that budget; the transformer wants a warm-up.
WARMUP = 0.1  # fraction of the budget


def stack(dataset: SyntheticShapes) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``dataset`` as images ``(N, 3, S, S)`` and labels ``(N,)``."""
    samples = [dataset[i] for i in range(len(dataset))]
    return torch.stack([s["image"] for s in samples]), torch.tensor([s["label"] for s in samples])


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def linear_probe(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    epochs: int,
    weight_decay: float,
) -> tuple[float, float]:
    """Logistic regression on flattened pixels; returns (train, best val) accuracy."""
    x_train, y_train = train[0].flatten(1), train[1]
    x_val, y_val = val[0].flatten(1), val[1]
    probe = nn.Linear(x_train.shape[1], num_classes)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=weight_decay)
    best_val = 0.0
    for _ in range(epochs):
        for batch in torch.randperm(len(x_train)).split(256):
            optimizer.zero_grad()
            F.cross_entropy(probe(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            best_val = max(best_val, accuracy(probe(x_val), y_val))
    with torch.no_grad():
        return accuracy(probe(x_train), y_train), best_val


def train_network(
    model: nn.Module,
    datamodule: SyntheticDataModule,
    val: tuple[torch.Tensor, torch.Tensor],
    seconds: float,
    images: int,
    lr: float,
) -> tuple[int, float, float]:
    """Trains ``model`` for ``seconds`` of wall clock, or on ``images`` images if ``images > 0``.

    Returns (images seen, seconds taken, val accuracy).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    start, seen, progress = time.perf_counter(), 0, 0.0
    model.train()
    epoch = 0
    while progress < 1:
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)  # outside Lightning nobody else does: new order, new flips
        epoch += 1
        for batch in loader:
            progress = seen / images if images > 0 else (time.perf_counter() - start) / seconds
            if progress >= 1:
                break
            # Warm-up, then cosine decay, over the budget: a time budget's step count is not known ahead.
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, progress / WARMUP) * 0.5 * (1 + math.cos(progress * math.pi))
            optimizer.zero_grad()
            F.cross_entropy(model(batch["image"]), batch["label"]).backward()
            optimizer.step()
            seen += len(batch["label"])
    taken = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(images) for images in val[0].split(256)])
    return seen, taken, accuracy(logits, val[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--num-train", type=int, default=4096)
    parser.add_argument("--num-val", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-epochs", type=int, default=30)
    parser.add_argument("--model", default="vt_resnet18")
    parser.add_argument(
        "--options", nargs="*", default=["token_channels=64", "qk_channels=32", "ffn_channels=64"],
        metavar="KEY=INT", help="builder options; the default is a small VT stage (the notebooks'); none: the paper's",
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="network training budget; 0 skips it")
    parser.add_argument("--images", type=int, default=0, help="train on this many images instead of --minutes")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    datamodule = SyntheticDataModule(
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_train=args.num_train,
        num_val=args.num_val,
        num_classes=args.num_classes,
        seed=args.seed,
    )
    datamodule.setup("fit")
    # The probe sees the training images without augmentation.
    shapes = (args.image_size, args.num_classes, args.seed)
    train = stack(SyntheticShapes(args.num_train, *shapes, "train", synthetic_eval()))
    val = stack(SyntheticShapes(args.num_val, *shapes, "val", synthetic_eval()))
    print(
        f"synthetic shapes: {args.num_classes} classes, {args.image_size}x{args.image_size}, "
        f"{args.num_train} train / {args.num_val} val, chance {1 / args.num_classes:.1%}"
    )

    for weight_decay in PROBE_WEIGHT_DECAYS if args.probe_epochs > 0 else ():
        train_acc, val_acc = linear_probe(train, val, args.num_classes, args.probe_epochs, weight_decay)
        print(f"linear probe on pixels, weight decay {weight_decay:g}: train {train_acc:.1%}, best val {val_acc:.1%}")

    if args.minutes > 0 or args.images > 0:
        from vt.models import create_model

        options = {key: int(value) for key, value in (o.split("=", 1) for o in args.options)}
        model = create_model(args.model, num_classes=args.num_classes, **options)
        seen, taken, val_acc = train_network(model, datamodule, val, args.minutes * 60, args.images, args.lr)
        print(
            f"{args.model} {options or ''} on {args.threads} threads: {seen} images ({seen / args.num_train:.1f} epochs) "
            f"in {taken:.0f} s ({seen / taken:.0f} images/s), val {val_acc:.1%}"
        )

if __name__ == "__main__":
    main()
