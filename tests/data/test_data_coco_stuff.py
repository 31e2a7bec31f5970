"""COCO-Stuff-164k: batches, class sets, layout errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_fixtures import write_mask

from vt.data import COCOStuffDataModule, DatasetError
from vt.data.coco_stuff import class_remap


def _setup(root: str, **overrides: object) -> COCOStuffDataModule:
    datamodule = COCOStuffDataModule(root, **{"image_size": 32, "batch_size": 3, "num_workers": 0} | overrides)  # type: ignore[arg-type]
    datamodule.setup("fit")
    return datamodule


def test_coco_stuff_train_batch_has_contract_types(coco_root: str) -> None:
    batch = next(iter(_setup(coco_root).train_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {"image": ((3, 3, 32, 32), torch.float32), "mask": ((3, 32, 32), torch.int64)}


def test_coco_stuff_val_batch_keeps_the_original_size(coco_root: str) -> None:
    batch = next(iter(_setup(coco_root).val_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {
        "image": ((3, 3, 30, 40), torch.float32), "mask": ((3, 30, 40), torch.int64), "size": ((3, 2), torch.int64)
    }


@pytest.mark.parametrize(
    ("class_set", "first", "last"),
    [("182", "person", "wood"), ("171", "person", "wood"), ("stuff", "banner", "wood")],
)
def test_coco_stuff_class_names_follow_the_class_set(coco_root: str, class_set: str, first: str, last: str) -> None:
    datamodule = COCOStuffDataModule(coco_root, class_set=class_set)
    names = datamodule.class_names
    assert (len(names), names[0], names[-1]) == (datamodule.num_classes, first, last)


def test_coco_stuff_171_names_leave_out_the_unused_thing_classes(coco_root: str) -> None:
    assert "street sign" not in COCOStuffDataModule(coco_root, class_set="171").class_names


@pytest.mark.parametrize(("class_set", "count"), [("182", 182), ("171", 171), ("stuff", 91)])
def test_coco_stuff_class_set_sets_class_count(coco_root: str, class_set: str, count: int) -> None:
    datamodule = COCOStuffDataModule(coco_root, class_set=class_set)
    assert (datamodule.num_classes, datamodule.num_seg_classes) == (count, count)


@pytest.mark.parametrize("class_set", ["182", "171", "stuff"])
def test_coco_stuff_masks_stay_within_the_class_set(coco_root: str, class_set: str) -> None:
    datamodule = _setup(coco_root, class_set=class_set)
    mask = next(iter(datamodule.val_dataloader()))["mask"]
    assert set(mask.unique().tolist()) <= set(range(datamodule.num_seg_classes)) | {255}


def test_171_remap_drops_the_unused_thing_ids() -> None:
    lut = class_remap("171")
    assert (lut[[0, 11, 12, 90, 91, 181, 255]].tolist()) == [0, 255, 11, 255, 80, 170, 255]


def test_stuff_remap_ignores_things() -> None:
    lut = class_remap("stuff")
    assert (lut[[0, 90, 91, 181, 255]].tolist()) == [255, 255, 0, 90, 255]


def test_unknown_class_set_is_a_dataset_error(coco_root: str) -> None:
    with pytest.raises(DatasetError, match="182, 171, stuff"):
        COCOStuffDataModule(coco_root, class_set="80")


def test_coco_stuff_missing_annotations_names_layout_and_fix(coco_root: str) -> None:
    (Path(coco_root) / "annotations" / "val2017").rename(Path(coco_root) / "annotations" / "val")
    with pytest.raises(DatasetError, match="annotations/val2017.*Fix: extract stuffthingmaps_trainval2017"):
        COCOStuffDataModule(coco_root)


def test_coco_stuff_image_without_mask_fails_setup(coco_root: str) -> None:
    (Path(coco_root) / "annotations" / "val2017" / f"{0:012d}.png").unlink()
    with pytest.raises(DatasetError, match="1 val files missing"):
        _setup(coco_root)


def test_coco_stuff_skip_bad_replaces_a_bad_mask_and_counts_it(coco_root: str) -> None:
    write_mask(Path(coco_root) / "annotations" / "val2017" / f"{0:012d}.png", num_classes=255, seed=7)
    datamodule = _setup(coco_root, skip_bad=True)
    batch = next(iter(datamodule.val_dataloader()))
    assert (len(batch["mask"]), datamodule.num_skipped) == (3, 1)
