"""Tiny dataset fixtures written in the real on-disk formats (method §7) into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import WNIDS, write_image, write_mask


@pytest.fixture
def imagenet_root(tmp_path: Path) -> str:
    """3 classes; train 4 images each (one grayscale, one CMYK, as real ImageNet has), val 2 each."""
    for label, wnid in enumerate(WNIDS):
        for i in range(4):
            mode = ("L", "CMYK", "RGB", "RGB")[i]
            write_image(tmp_path / "train" / wnid / f"{wnid}_{i}.JPEG", mode=mode, seed=10 * label + i)
        for i in range(2):
            write_image(tmp_path / "val" / wnid / f"ILSVRC2012_val_{label}{i}.JPEG", seed=100 + 10 * label + i)
    return str(tmp_path)


@pytest.fixture
def lip_root(tmp_path: Path) -> str:
    """LIP's released layout: 6 train and 3 val ids with 20-class parsing masks."""
    for split, count in (("train", 6), ("val", 3)):
        ids = [f"{1000 + i}_{split}" for i in range(count)]
        for seed, sample_id in enumerate(ids):
            write_image(tmp_path / "TrainVal_images" / f"{split}_images" / f"{sample_id}.jpg", seed=seed)
            write_mask(
                tmp_path / "TrainVal_parsing_annotations" / f"{split}_segmentations" / f"{sample_id}.png",
                num_classes=20,
                seed=seed,
            )
        (tmp_path / "TrainVal_images" / f"{split}_id.txt").write_text("\n".join(ids) + "\n")
    return str(tmp_path)


@pytest.fixture
def coco_root(tmp_path: Path) -> str:
    """COCO-Stuff-164k's layout: 6 train and 3 val images with 182-id label maps."""
    for split, count in (("train2017", 6), ("val2017", 3)):
        for i in range(count):
            name = f"{i:012d}"
            write_image(tmp_path / "images" / split / f"{name}.jpg", seed=i)
            write_mask(tmp_path / "annotations" / split / f"{name}.png", num_classes=182, seed=i)
    return str(tmp_path)
