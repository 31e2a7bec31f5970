"""LIP in its released layout: batches, layout errors, bad masks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_fixtures import write_mask

from vt.data import BadSampleError, DatasetError, LIPDataModule


def _setup(root: str, **overrides: object) -> LIPDataModule:
    datamodule = LIPDataModule(root, **{"image_size": 32, "batch_size": 3, "num_workers": 0} | overrides)  # type: ignore[arg-type]
    datamodule.setup("fit")
    return datamodule


def _train_mask(root: str) -> Path:
    return Path(root) / "TrainVal_parsing_annotations" / "train_segmentations" / "1000_train.png"


def test_lip_train_batch_has_contract_types(lip_root: str) -> None:
    batch = next(iter(_setup(lip_root).train_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {"image": ((3, 3, 32, 32), torch.float32), "mask": ((3, 32, 32), torch.int64)}


def test_lip_val_batch_keeps_the_original_size(lip_root: str) -> None:
    batch = next(iter(_setup(lip_root).val_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {
        "image": ((3, 3, 30, 40), torch.float32), "mask": ((3, 30, 40), torch.int64), "size": ((3, 2), torch.int64)
    }


def test_lip_masks_hold_only_lip_classes_and_ignore(lip_root: str) -> None:
    batch = next(iter(_setup(lip_root).train_dataloader()))
    assert set(batch["mask"].unique().tolist()) <= set(range(20)) | {255}


def test_lip_has_20_mask_classes_before_setup(lip_root: str) -> None:
    datamodule = LIPDataModule(lip_root)
    assert (datamodule.num_classes, datamodule.num_seg_classes, datamodule.has_labels) == (20, 20, {"image", "mask"})


def test_lip_class_names_are_the_20_labels_in_id_order(lip_root: str) -> None:
    names = LIPDataModule(lip_root).class_names
    assert (len(names), names[0], names[14], names[15]) == (20, "background", "left-arm", "right-arm")


def test_lip_missing_annotations_folder_names_layout(lip_root: str) -> None:
    (Path(lip_root) / "TrainVal_parsing_annotations").rename(Path(lip_root) / "elsewhere")
    with pytest.raises(DatasetError, match="train_segmentations.*Expected layout: root/TrainVal_images"):
        LIPDataModule(lip_root)


def test_lip_missing_root_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such directory"):
        LIPDataModule(str(tmp_path / "absent"))


def test_lip_out_of_range_mask_fails_with_its_path(lip_root: str) -> None:
    write_mask(_train_mask(lip_root), num_classes=40, seed=1)
    dataset = _setup(lip_root).train_set
    with pytest.raises(BadSampleError, match=r"1000_train\.png has label values"):
        dataset[0]


def test_lip_listed_id_without_files_fails_setup(lip_root: str) -> None:
    _train_mask(lip_root).unlink()
    with pytest.raises(DatasetError, match=r"1 train files missing: .*1000_train\.png"):
        _setup(lip_root)


def test_lip_skip_bad_drops_and_counts_missing_files(lip_root: str) -> None:
    _train_mask(lip_root).unlink()
    datamodule = _setup(lip_root, skip_bad=True)
    assert (len(datamodule.train_set), datamodule.num_skipped) == (5, 1)
