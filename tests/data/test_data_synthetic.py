"""The synthetic shapes dataset and its datamodule."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser

from vt.data import DATAMODULES, SHAPES, DatasetError, SyntheticDataModule, SyntheticShapes
from vt.data.synthetic import render


def _datamodule(**overrides: object) -> SyntheticDataModule:
    args = {"image_size": 32, "batch_size": 4, "num_train": 16, "num_val": 8, "num_classes": 4} | overrides
    datamodule = SyntheticDataModule(**args)  # type: ignore[arg-type]
    datamodule.setup("fit")
    return datamodule


def test_synthetic_batch_has_image_label_and_mask_of_contract_types() -> None:
    batch = next(iter(_datamodule().train_dataloader()))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in batch.items()}
    assert shapes == {
        "image": ((4, 3, 32, 32), torch.float32),
        "label": ((4,), torch.int64),
        "mask": ((4, 32, 32), torch.int64),
    }


def test_synthetic_attributes_exist_before_setup() -> None:
    datamodule = SyntheticDataModule(num_classes=7)
    assert (datamodule.num_classes, datamodule.num_seg_classes, datamodule.ignore_index) == (7, 8, 255)
    assert datamodule.has_labels == {"image", "label", "mask"}


def test_synthetic_class_names_are_the_shapes_and_masks_add_background() -> None:
    datamodule = SyntheticDataModule(num_classes=3)
    assert datamodule.class_names == list(SHAPES)[:3]
    assert datamodule.seg_class_names == ["background", *list(SHAPES)[:3]]


def test_synthetic_mask_marks_exactly_the_labelled_shape() -> None:
    dataset = SyntheticShapes(12, image_size=32, num_classes=12)
    for index in range(12):
        sample = dataset[index]
        assert set(sample["mask"].unique().tolist()) == {0, sample["label"] + 1}


def test_synthetic_classes_are_balanced() -> None:
    labels = [SyntheticShapes(20, image_size=8, num_classes=4)[i]["label"] for i in range(20)]
    assert [labels.count(c) for c in range(4)] == [5, 5, 5, 5]


def test_synthetic_is_deterministic_under_a_seed() -> None:
    first, second = SyntheticShapes(4, image_size=32, seed=3), SyntheticShapes(4, image_size=32, seed=3)
    assert all(torch.equal(first[i]["image"], second[i]["image"]) for i in range(4))


def test_synthetic_seed_and_split_change_the_images() -> None:
    base = SyntheticShapes(1, image_size=32, seed=0)[0]["image"]
    other_seed = SyntheticShapes(1, image_size=32, seed=1)[0]["image"]
    val = SyntheticShapes(1, image_size=32, seed=0, split="val")[0]["image"]
    assert not torch.equal(base, other_seed) and not torch.equal(base, val)


def test_synthetic_draws_the_same_scene_at_any_resolution() -> None:
    small = torch.stack([SyntheticShapes(16, image_size=32)[i]["mask"] for i in range(16)])
    large = torch.stack([SyntheticShapes(16, image_size=128)[i]["mask"] for i in range(16)])
    downsampled = F.interpolate(large[:, None].float(), size=32, mode="nearest")[:, 0].to(small.dtype)
    assert (downsampled == small).float().mean() > 0.97


def test_synthetic_workers_give_the_same_batches_as_the_main_process() -> None:
    in_main = list(_datamodule(num_workers=0).val_dataloader())
    in_workers = list(_datamodule(num_workers=2).val_dataloader())
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(in_main, in_workers, strict=True))


def test_synthetic_shuffle_order_follows_the_seed() -> None:
    first = next(iter(_datamodule(seed=5).train_dataloader()))["label"]
    second = next(iter(_datamodule(seed=5).train_dataloader()))["label"]
    assert torch.equal(first, second)


def test_synthetic_one_object_is_the_plain_render() -> None:
    dataset = SyntheticShapes(8, image_size=32, num_classes=4, objects=1)
    for index in range(8):
        image, mask = render(np.random.default_rng([0, 0, index]), index % 4, 32)
        assert np.array_equal(dataset[index]["image"].numpy(), image)
        assert np.array_equal(dataset[index]["mask"].numpy(), mask)


def _mask_pixels_per_class(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels of each shape class (background dropped), ``(num_classes,)``."""
    return torch.bincount(mask.flatten().long(), minlength=num_classes + 1)[1:]


def test_synthetic_objects_puts_that_many_distinct_classes_in_the_mask() -> None:
    dataset = SyntheticShapes(20, image_size=112, num_classes=10, objects=3)
    present = [int((_mask_pixels_per_class(dataset[i]["mask"], 10) > 0).sum()) for i in range(20)]
    assert present == [3] * 20


def test_synthetic_objects_label_has_the_most_mask_pixels() -> None:
    dataset = SyntheticShapes(20, image_size=112, num_classes=10, objects=3)
    for index in range(20):
        sample = dataset[index]
        assert int(_mask_pixels_per_class(sample["mask"], 10).argmax()) == sample["label"] == index % 10


def test_synthetic_objects_are_deterministic_under_a_seed() -> None:
    first = SyntheticShapes(4, image_size=64, num_classes=6, seed=3, objects=3)
    second = SyntheticShapes(4, image_size=64, num_classes=6, seed=3, objects=3)
    for index in range(4):
        assert torch.equal(first[index]["image"], second[index]["image"])
        assert torch.equal(first[index]["mask"], second[index]["mask"])


@pytest.mark.parametrize("objects", [0, 5])
def test_synthetic_rejects_objects_outside_one_to_num_classes(objects: int) -> None:
    with pytest.raises(DatasetError, match=r"1\.\.4.*--data\.objects"):
        SyntheticDataModule(num_classes=4, objects=objects)


def test_synthetic_objects_batches_have_masks_that_agree_with_labels() -> None:
    batch = next(iter(_datamodule(image_size=64, objects=3).train_dataloader()))
    for mask, label in zip(batch["mask"], batch["label"], strict=True):
        pixels = _mask_pixels_per_class(mask, 4)
        assert int(pixels.argmax()) == int(label) and int((pixels > 0).sum()) >= 2


def test_synthetic_objects_parses_from_the_command_line() -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(SyntheticDataModule, "data")
    datamodule = parser.instantiate_classes(parser.parse_args(["--data.objects", "3"])).data
    assert (datamodule.objects, datamodule.hparams["objects"]) == (3, 3)


def test_synthetic_rejects_more_classes_than_shapes() -> None:
    with pytest.raises(DatasetError, match="num_classes"):
        SyntheticDataModule(num_classes=40)


def test_train_split_smaller_than_a_batch_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="batch_size"):
        _datamodule(num_train=2)


def test_datamodules_are_registered_by_name() -> None:
    assert set(DATAMODULES) == {"synthetic", "imagenet", "lip", "cocostuff"}


def test_synthetic_datamodule_parses_from_command_line_flags() -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(SyntheticDataModule, "data")
    config = parser.parse_args(["--data.batch_size", "8", "--data.recipe", "advanced"])
    datamodule = parser.instantiate_classes(config).data
    assert (datamodule.batch_size, datamodule.hparams["recipe"]) == (8, "advanced")


class _MeanColourClassifier(L.LightningModule):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, num_classes)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self.head(batch["image"].mean((2, 3))), batch["label"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", F.cross_entropy(self.head(batch["image"].mean((2, 3))), batch["label"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_synthetic_datamodule_runs_under_a_lightning_trainer() -> None:
    datamodule = SyntheticDataModule(image_size=16, batch_size=4, num_train=8, num_val=4, num_classes=3)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(_MeanColourClassifier(datamodule.num_classes), datamodule=datamodule)
    assert trainer.state.finished


def test_synthetic_set_label_names_exactly_the_shapes_in_the_mask() -> None:
    dataset = SyntheticShapes(20, image_size=112, num_classes=5, objects=2, label="set")
    pairs = [(a, b) for a in range(5) for b in range(a + 1, 5)]
    largest = set()
    for index in range(20):
        sample = dataset[index]
        pixels = _mask_pixels_per_class(sample["mask"], 5)
        assert sample["label"] == index % 10
        assert tuple(int(c) for c in torch.nonzero(pixels).flatten()) == pairs[sample["label"]]
        largest.add((sample["label"], int(pixels.argmax())))
    # Either member of a pair can be the larger shape, so size does not give the label away.
    assert len(largest) > 10


def test_synthetic_set_label_datamodule_gives_the_classifier_one_output_per_set() -> None:
    datamodule = _datamodule(image_size=32, num_classes=4, objects=2, label="set")
    assert datamodule.num_classes == 6 and datamodule.num_seg_classes == 5
    assert datamodule.class_names[:3] == ["disk+square", "disk+triangle", "disk+star"]
    batch = next(iter(datamodule.train_dataloader()))
    assert int(batch["label"].max()) < 6


@pytest.mark.parametrize(("label", "objects", "message"), [
    ("set", 1, r"'set' needs at least 2 objects.*--data\.objects 2"),
    ("pairs", 2, r"unknown synthetic label 'pairs'; choose one of largest, set"),
])
def test_synthetic_rejects_a_bad_label_option(label: str, objects: int, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        SyntheticDataModule(num_classes=4, objects=objects, label=label)  # type: ignore[arg-type]
