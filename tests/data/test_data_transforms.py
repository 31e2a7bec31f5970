"""Paired image/mask transforms and the classification recipes."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from vt.data import DatasetError, ImageNetDataModule
from vt.data.lip import LIP_FLIP_PAIRS
from vt.data.transforms import (
    HorizontalFlip,
    classification_eval,
    classification_train,
    flip_permutation,
    segmentation_eval,
    segmentation_train,
)


def _sample(height: int = 30, width: int = 40, labels: int = 20) -> dict[str, object]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)),
        "mask": tv_tensors.Mask(torch.randint(0, labels, (height, width), dtype=torch.uint8, generator=generator)),
    }


def test_lip_flip_swaps_left_and_right_part_labels() -> None:
    mask = torch.zeros(1, 8, dtype=torch.uint8)
    mask[0, :6] = torch.tensor([14, 15, 16, 17, 18, 19])
    sample = {"image": tv_tensors.Image(torch.zeros(3, 1, 8, dtype=torch.uint8)), "mask": tv_tensors.Mask(mask)}
    flipped = HorizontalFlip(LIP_FLIP_PAIRS, p=1.0)(sample)["mask"]
    assert flipped[0].tolist() == [0, 0, 18, 19, 16, 17, 14, 15]


def test_flip_moves_image_and_mask_together() -> None:
    sample = _sample()
    flipped = HorizontalFlip(p=1.0)(sample)
    assert torch.equal(flipped["image"], sample["image"].flip(-1)) and torch.equal(flipped["mask"], sample["mask"].flip(-1))


def test_segmentation_train_pads_mask_with_ignore_index() -> None:
    torch.manual_seed(0)
    out = segmentation_train(image_size=200)(_sample())  # the 30x40 image is smaller than any scale draw
    assert (out["mask"] == 255).any() and out["mask"].shape == (200, 200)


def test_segmentation_train_resizes_mask_with_nearest() -> None:
    torch.manual_seed(0)
    sample = _sample(labels=3)
    out = segmentation_train(image_size=24)(sample)
    assert set(out["mask"].unique().tolist()) <= {0, 1, 2, 255}


def test_segmentation_outputs_batch_dtypes() -> None:
    out = segmentation_train(image_size=24)(_sample())
    assert (out["image"].dtype, out["mask"].dtype) == (torch.float32, torch.int64)


def test_segmentation_eval_keeps_the_original_mask() -> None:
    sample = _sample(height=30, width=40)
    out = segmentation_eval()(sample)
    assert out["image"].shape == (3, 30, 40) and torch.equal(out["mask"], sample["mask"].long())


def test_flip_permutation_swaps_only_the_pairs_and_undoes_itself() -> None:
    permutation = flip_permutation(LIP_FLIP_PAIRS, 20)
    assert permutation[12:20].tolist() == [12, 13, 15, 14, 17, 16, 19, 18] and torch.equal(
        permutation[permutation], torch.arange(20)
    )


@pytest.mark.parametrize("recipe", ["standard", "advanced"])
def test_classification_recipes_give_normalised_crops(recipe: str) -> None:
    out = classification_train(32, recipe)({"image": _sample()["image"], "label": 3})
    assert (out["image"].shape, out["image"].dtype, out["label"]) == ((3, 32, 32), torch.float32, 3)


def test_advanced_recipe_adds_autoaugment() -> None:
    assert any(isinstance(t, v2.AutoAugment) for t in classification_train(32, "advanced").transforms)


def test_unknown_recipe_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="standard, advanced"):
        classification_train(32, "fancy")


def test_classification_eval_centre_crops_to_image_size() -> None:
    assert classification_eval(32)({"image": _sample()["image"], "label": 0})["image"].shape == (3, 32, 32)


def test_min_crop_area_one_keeps_the_whole_image() -> None:
    image = _sample(48, 48)["image"]
    whole = v2.Compose([v2.Resize(24, antialias=True), *classification_eval(24).transforms[2:]])(image)
    torch.manual_seed(0)
    for _ in range(4):  # flipped or not, never cropped
        out = classification_train(24, min_crop_area=1.0)({"image": image})["image"]
        assert torch.allclose(out, whole) or torch.allclose(out, whole.flip(-1))
    # ImageNet's default crops: some of four draws differ from the whole image either way round.
    crops = [classification_train(24)({"image": image})["image"] for _ in range(4)]
    assert any(not (torch.allclose(c, whole) or torch.allclose(c, whole.flip(-1))) for c in crops)


@pytest.mark.parametrize("area", [0.0, -0.1, 1.5])
def test_min_crop_area_out_of_range_is_refused(area: float, imagenet_root: str) -> None:
    with pytest.raises(ValueError, match=r"min_crop_area must be in \(0, 1\]"):
        classification_train(24, min_crop_area=area)
    with pytest.raises(DatasetError, match=r"--data.min_crop_area must be in \(0, 1\]"):
        ImageNetDataModule(imagenet_root, min_crop_area=area)
