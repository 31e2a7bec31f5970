"""Writers for tiny datasets in the real on-disk formats (method §7); conftest.py builds fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850")  # the classes of the ImageNet fixture
IMAGE_SIZE = (40, 30)  # width, height: not square, so resizing and padding both show


def write_image(path: Path, size: tuple[int, int] = IMAGE_SIZE, mode: str = "RGB", seed: int = 0) -> Path:
    """A random image of PIL ``mode`` at ``path``; the format follows the suffix."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    (rgb if mode == "RGB" else rgb.convert(mode)).save(path)
    return path


def write_mask(path: Path, num_classes: int, size: tuple[int, int] = IMAGE_SIZE, seed: int = 0) -> Path:
    """A random 8-bit label PNG with ids below ``num_classes`` and a strip of 255 (unlabeled)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, num_classes, size=(size[1], size[0]), dtype=np.uint8)
    ids[0] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids, mode="L").save(path)
    return path


def truncate(path: Path) -> None:
    """Cuts a file in half, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

