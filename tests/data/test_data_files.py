"""Decoding images and masks: every image mode becomes RGB, every bad file names its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import truncate, write_image, write_mask
from PIL import Image

from vt.data import BadSampleError
from vt.data.files import SegmentationDataset, load_mask, load_rgb


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".png"), ("CMYK", ".jpg"), ("RGBA", ".png"), ("P", ".png"), ("LA", ".png"), ("1", ".png")],
)
def test_load_rgb_converts_every_mode_to_uint8_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    image = load_rgb(str(write_image(tmp_path / f"image{suffix}", mode=mode)))
    assert (image.dtype, tuple(image.shape)) == (torch.uint8, (3, 30, 40))


def test_load_rgb_converts_palette_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    Image.new("P", (4, 3), 1).save(path, transparency=0)
    assert load_rgb(str(path)).shape == (3, 3, 4)


def test_load_rgb_keeps_16_bit_brightness(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((3, 4), 32896, dtype=np.uint16)).save(path)  # 0x8080: mid-grey
    assert load_rgb(str(path)).unique().tolist() == [128]


def test_load_rgb_reports_truncated_image_with_its_path(tmp_path: Path) -> None:
    path = write_image(tmp_path / "cut.jpg", size=(64, 64))
    truncate(path)
    with pytest.raises(BadSampleError, match="cut.jpg"):
        load_rgb(str(path))


def test_load_rgb_reports_unreadable_file_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.JPEG"
    path.write_text("not an image")
    with pytest.raises(BadSampleError, match="notes.JPEG"):
        load_rgb(str(path))


def test_load_mask_reports_out_of_range_labels_with_path(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "mask.png", num_classes=30)
    with pytest.raises(BadSampleError, match=r"mask\.png.*outside 0\.\.19"):
        load_mask(str(path), num_classes=20)


def test_load_mask_rejects_rgb_masks(tmp_path: Path) -> None:
    path = write_image(tmp_path / "colour.png")
    with pytest.raises(BadSampleError, match="colour.png.*single-channel"):
        load_mask(str(path), num_classes=20)


def test_segmentation_dataset_reports_mask_size_mismatch_with_both_paths(tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", size=(40, 30))
    mask = write_mask(tmp_path / "a.png", num_classes=5, size=(20, 30))
    dataset = SegmentationDataset([(str(image), str(mask))], num_raw_classes=5)
    with pytest.raises(BadSampleError, match=r"a\.png is 20x30 .*a\.jpg is 40x30"):
        dataset[0]
