"""Sample transforms: classification recipes (method §6) and paired image/mask augmentation.

Every transform takes and returns a sample dict (``"image"``: `tv_tensors.Image` uint8
``(3, H, W)``, optionally ``"mask"``: `tv_tensors.Mask` uint8 ``(H, W)`` and ``"label"``: int).
torchvision's transforms v2 apply one geometric draw to the image and its mask together, resizing
masks with nearest-neighbour; padded mask pixels get ``IGNORE_INDEX``. Each pipeline ends in
`finalize`, which produces the batch types of `vt.data.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vt.data.base import IGNORE_INDEX, Sample, Transform, check_min_crop_area, check_recipe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Classification evaluation resizes to image_size / 0.875 and centre-crops (224 from 256).
EVAL_CROP_FRACTION = 0.875
# Segmentation training rescales the shorter side to this range of image_size before cropping.
SEG_SCALE_RANGE = (0.5, 2.0)
_PAD_FILL = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}


def finalize() -> list[Transform]:
    """uint8 image -> float32 normalised with ImageNet statistics; mask -> int64; plain tensors."""
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.ToPureTensor(),
    ]


def classification_train(image_size: int, recipe: str = "standard", min_crop_area: float = 0.08) -> Transform:
    """Method §6 training augmentation by name.

    ``"standard"``: random-resized crop to ``image_size`` and horizontal flip (paper Table 2);
    ``"advanced"``: the same followed by ImageNet AutoAugment (paper Table 8; the recipe's other
    parts, such as label smoothing and stochastic depth, live in the task and the model).
    ``min_crop_area``: the smallest crop, as a fraction of the image's area (ImageNet's 0.08;
    larger keeps more of each image, for data whose object does not fill the frame).
    """
    check_recipe(recipe)
    check_min_crop_area(min_crop_area)
    ops: list[Transform] = [
        v2.RandomResizedCrop(image_size, scale=(min_crop_area, 1.0), antialias=True), v2.RandomHorizontalFlip()
    ]
    if recipe == "advanced":
        ops.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
    return v2.Compose(ops + finalize())


def classification_eval(image_size: int) -> Transform:
    """Resize the shorter side to ``image_size / 0.875``, then centre-crop ``image_size``."""
    return v2.Compose(
        [
            v2.Resize(round(image_size / EVAL_CROP_FRACTION), antialias=True),
            v2.CenterCrop(image_size),
            *finalize(),
        ]
    )


def flip_permutation(swap_pairs: Sequence[tuple[int, int]], num_labels: int = 256) -> torch.Tensor:
    """The labels ``(num_labels,)`` int64 that a horizontal flip turns each label into.

    Identity but for ``swap_pairs``, which trade places (LIP's left arm is a mirrored right arm).
    It is its own inverse: training flips masks with it (`HorizontalFlip`), evaluation swaps the
    class channels of a flipped view's logits back with it (`vt.tasks.seg_eval`).
    """
    permutation = torch.arange(num_labels)
    for a, b in swap_pairs:
        if not (0 <= a < num_labels and 0 <= b < num_labels):
            raise ValueError(f"flip pair ({a}, {b}) is outside the {num_labels} labels")
        permutation[a], permutation[b] = b, a
    return permutation


class HorizontalFlip:
    """Flips image and mask together with probability ``p``, swapping mirrored mask labels.

    Args:
        swap_pairs: label pairs that trade places under a flip, e.g. LIP's left/right arm (14, 15).
        p: flip probability.
    """

    def __init__(self, swap_pairs: Sequence[tuple[int, int]] = (), p: float = 0.5) -> None:
        self.p = p
        self.lut = flip_permutation(swap_pairs).to(torch.uint8)

    def __call__(self, sample: Sample) -> Sample:
        if torch.rand(()) >= self.p:
            return sample
        flipped = dict(sample)
        flipped["image"] = F.horizontal_flip(sample["image"])
        if "mask" in sample:
            mask = F.horizontal_flip(sample["mask"]).as_subclass(torch.Tensor)
            flipped["mask"] = tv_tensors.Mask(self.lut[mask.long()])
        return flipped


class PadTo:
    """Pads image and mask on the bottom and right to ``size x size`` (image 0, mask ignore)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, sample: Sample) -> Sample:
        height, width = sample["image"].shape[-2:]
        padding = [0, 0, self.size - width, self.size - height]
        return {
            key: F.pad(value, padding, fill=_PAD_FILL[type(value)]) if type(value) in _PAD_FILL else value
            for key, value in sample.items()
        }


def segmentation_train(image_size: int, swap_pairs: Sequence[tuple[int, int]] = ()) -> Transform:
    """Random scale (shorter side in 0.5-2x ``image_size``), random ``image_size`` crop (padded
    where the image is smaller), horizontal flip swapping ``swap_pairs``."""
    low, high = SEG_SCALE_RANGE
    return v2.Compose(
        [
            v2.RandomResize(round(low * image_size), round(high * image_size), antialias=True),
            v2.RandomCrop(image_size, pad_if_needed=True, fill=_PAD_FILL),
            HorizontalFlip(swap_pairs),
            *finalize(),
        ]
    )


def segmentation_eval() -> Transform:
    """The whole image and its mask at their original size, only normalised.

    The network's input is resized at evaluation (`vt.tasks.seg_eval`), whose logits are resized
    back, so every labelled pixel of the original mask is scored; `vt.data.segmentation.collate_original_size`
    batches images of different sizes.
    """
    return v2.Compose(finalize())


def synthetic_train(recipe: str = "standard") -> Transform:
    """Augmentation that keeps both the label and the mask of a generated sample exact.

    ``"standard"``: paired horizontal flip (every shape class is closed under mirroring);
    ``"advanced"``: also colour jitter, the photometric part of AutoAugment (its geometric ops
    cannot follow a mask, and crops could cut the shape away from its label).
    """
    check_recipe(recipe)
    ops: list[Transform] = [HorizontalFlip()]
    if recipe == "advanced":
        ops.append(v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1))
    return v2.Compose(ops + finalize())


def synthetic_eval() -> Transform:
    return v2.Compose(finalize())
