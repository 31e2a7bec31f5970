"""Bad data files (issue 14): lossy masks, EXIF orientation, broken symlinks, the skipped count."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "data"))
from data_fixtures import WNIDS, truncate, write_image, write_mask  # noqa: E402

from vt.data import BadSampleError, ImageNetDataModule  # noqa: E402
from vt.data.base import SkipReport  # noqa: E402
from vt.data.files import load_mask, load_rgb  # noqa: E402
from vt.tasks import ClassificationTask  # noqa: E402


def test_mask_saved_as_jpeg_under_a_png_name_is_refused(tmp_path: Path) -> None:
    ids = np.zeros((16, 16), dtype=np.uint8)
    ids[4:12, 4:12] = 3  # a square: JPEG rings its edges with values that are no class
    path = tmp_path / "mask.png"
    Image.fromarray(ids, mode="L").save(path, format="JPEG")
    with pytest.raises(BadSampleError, match=r"mask .*mask\.png is stored as lossy JPEG.*save the masks as PNG"):
        load_mask(str(path), num_classes=20)


def test_png_mask_is_still_read_exactly(tmp_path: Path) -> None:
    path = write_mask(tmp_path / "mask.png", num_classes=5)
    assert torch.equal(load_mask(str(path), 5), torch.from_numpy(np.array(Image.open(path))))


def test_image_is_turned_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    path = write_image(tmp_path / "photo.jpg", size=(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view; the viewer shows it 30 wide, 40 high
    Image.open(path).save(path, exif=exif)
    assert tuple(load_rgb(str(path)).shape) == (3, 40, 30)
    assert tuple(load_rgb(str(path), exif_orientation=False).shape) == (3, 30, 40)


def _imagenet(root: Path) -> str:
    for label, wnid in enumerate(WNIDS[:2]):
        for i in range(2):
            write_image(root / "train" / wnid / f"{wnid}_{i}.JPEG", seed=10 * label + i)
        for i in range(2):
            write_image(root / "val" / wnid / f"v{label}{i}.JPEG", seed=100 + 10 * label + i)
    return str(root)


def test_skip_bad_reports_the_count_at_each_epoch_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, one_thread: None
) -> None:
    root = _imagenet(tmp_path / "inet")
    truncate(Path(root) / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG")
    datamodule = ImageNetDataModule(root, image_size=32, batch_size=2, num_workers=0, skip_bad=True)
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, num_sanity_val_steps=0, limit_val_batches=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    task = ClassificationTask(name="resnet18", num_classes=2, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="vt.data.base"):
        trainer.fit(task, datamodule)
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert reports == [
        "skipped 1 unreadable samples in epoch 0 (listed above); 1 in this run so far",
        "skipped 1 unreadable samples in epoch 1 (listed above); 2 in this run so far",
    ]
    assert datamodule.num_skipped == 2 and sum(isinstance(c, SkipReport) for c in trainer.callbacks) == 1
