"""ImageNet in the ImageFolder layout: batches, layout errors, bad images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from data_fixtures import WNIDS, truncate

from vt.data import BadSampleError, DatasetError, ImageNetDataModule


def _setup(root: str, **overrides: object) -> ImageNetDataModule:
    datamodule = ImageNetDataModule(root, **{"image_size": 32, "batch_size": 4, "num_workers": 0} | overrides)  # type: ignore[arg-type]
    datamodule.setup("fit")
    return datamodule


def _first_train_image(root: str) -> Path:
    return sorted((Path(root) / "train").glob("*/*.JPEG"))[0]


@pytest.mark.parametrize("recipe", ["standard", "advanced"])
def test_imagenet_train_batch_has_contract_types(imagenet_root: str, recipe: str) -> None:
    batch = next(iter(_setup(imagenet_root, recipe=recipe).train_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {"image": ((4, 3, 32, 32), torch.float32), "label": ((4,), torch.int64)}


def test_imagenet_val_batch_has_contract_types(imagenet_root: str) -> None:
    batch = next(iter(_setup(imagenet_root).val_dataloader()))
    assert (batch["image"].shape, batch["label"].tolist()) == ((4, 3, 32, 32), [0, 0, 1, 1])


def test_imagenet_counts_classes_before_setup(imagenet_root: str) -> None:
    datamodule = ImageNetDataModule(imagenet_root)
    assert (datamodule.num_classes, datamodule.has_labels) == (3, {"image", "label"})


def test_imagenet_class_names_are_the_sorted_wnids(imagenet_root: str) -> None:
    assert ImageNetDataModule(imagenet_root).class_names == sorted(WNIDS)


def test_imagenet_missing_root_names_layout_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no such directory\. Expected layout: root/train/<wnid>.*Fix: pass --data\.root"):
        ImageNetDataModule(str(tmp_path / "absent"))


def test_imagenet_flat_val_folder_is_one_line_layout_error(imagenet_root: str) -> None:
    val = Path(imagenet_root) / "val"
    for image in list(val.glob("*/*.JPEG")):
        image.rename(val / image.name)
    for folder in [p for p in val.iterdir() if p.is_dir()]:
        folder.rmdir()
    with pytest.raises(DatasetError, match="val/ holds 6 images directly instead of in class folders") as error:
        ImageNetDataModule(imagenet_root)
    assert "\n" not in str(error.value) and "valprep.sh" in str(error.value)


def test_imagenet_val_class_unknown_to_train_is_a_layout_error(imagenet_root: str) -> None:
    (Path(imagenet_root) / "val" / "n99999999").mkdir()
    with pytest.raises(DatasetError, match="n99999999"):
        ImageNetDataModule(imagenet_root)


def test_imagenet_empty_class_folder_is_a_layout_error(imagenet_root: str) -> None:
    shutil.rmtree(Path(imagenet_root) / "train" / "n01443537")
    (Path(imagenet_root) / "train" / "n01443537").mkdir()
    with pytest.raises(DatasetError, match="n01443537 holds no images"):
        _setup(imagenet_root)


def test_imagenet_truncated_image_fails_fast_with_its_path(imagenet_root: str) -> None:
    bad = _first_train_image(imagenet_root)
    truncate(bad)
    datamodule = _setup(imagenet_root, num_workers=2)
    with pytest.raises(BadSampleError, match=bad.name):
        list(datamodule.train_dataloader())


def test_imagenet_skip_bad_skips_and_counts_across_workers(imagenet_root: str) -> None:
    truncate(_first_train_image(imagenet_root))
    datamodule = _setup(imagenet_root, num_workers=2, skip_bad=True, batch_size=2)
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 6 and datamodule.num_skipped == 1


def test_imagenet_broken_symlink_is_a_missing_file_error_naming_it(imagenet_root: str) -> None:
    (Path(imagenet_root) / "train" / "n01443537" / "gone.JPEG").symlink_to("absent.JPEG")
    with pytest.raises(DatasetError, match=r"1 train images missing: .*gone\.JPEG; .*--data\.skip_bad true"):
        _setup(imagenet_root)


def test_imagenet_broken_symlink_is_skipped_and_counted_with_skip_bad(imagenet_root: str) -> None:
    (Path(imagenet_root) / "train" / "n01443537" / "gone.JPEG").symlink_to("absent.JPEG")
    datamodule = _setup(imagenet_root, skip_bad=True)
    assert (len(datamodule.train_set), datamodule.num_skipped) == (12, 1)


def test_imagenet_class_folder_of_broken_symlinks_is_a_layout_error(imagenet_root: str) -> None:
    folder = Path(imagenet_root) / "train" / "n01443537"
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "gone.JPEG").symlink_to("absent.JPEG")
    with pytest.raises(DatasetError, match="n01443537 holds no images"):
        _setup(imagenet_root, skip_bad=True)
