"""The shared part of the file-backed segmentation datamodules (LIP, COCO-Stuff)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vt.data.base import IGNORE_INDEX, Sample, VTDataModule, VTDataset
from vt.data.files import SegmentationDataset
from vt.data.transforms import segmentation_eval, segmentation_train


def collate_original_size(samples: list[Sample]) -> Sample:
    """Batches evaluation samples of different sizes without resizing them.

    Returns ``{"image": (B, 3, H, W), "mask": (B, H, W), "size": (B, 2)}``: each image and mask
    padded on the bottom and right to the batch's largest ``H x W`` (image 0, mask ignore) and
    ``size`` holding each one's original ``(height, width)``, which `vt.tasks.seg_eval` crops back to.
    """
    height = max(s["image"].shape[-2] for s in samples)
    width = max(s["image"].shape[-1] for s in samples)

    def pad(tensor: torch.Tensor, fill: int) -> torch.Tensor:
        return F.pad(tensor, (0, width - tensor.shape[-1], 0, height - tensor.shape[-2]), value=fill)

    return {
        "image": torch.stack([pad(s["image"], 0) for s in samples]),
        "mask": torch.stack([pad(s["mask"], IGNORE_INDEX) for s in samples]),
        "size": torch.tensor([list(s["image"].shape[-2:]) for s in samples], dtype=torch.long),
    }


class SegmentationFilesDataModule(VTDataModule):
    """Image/mask pairs on disk.

    Training batches ``{"image": (B, 3, S, S), "mask": (B, S, S)}``: random scale, ``S x S`` crop,
    flip (`vt.data.transforms.segmentation_train`). Evaluation batches (val and test) keep every
    image and mask at its **original** size, ``{"image", "mask", "size"}`` (`collate_original_size`):
    the task resizes the network's input (longer side ``S`` by default) and scores its logits,
    resized back, against the original mask (`vt.tasks.seg_eval`). ``recipe`` does not apply.
    Subclasses set ``num_raw_classes`` (valid ids in the mask files), ``remap`` (raw -> training
    ids, or None) and ``swap_pairs`` (labels a horizontal flip exchanges), and list the pairs.
    """

    num_raw_classes: int
    remap: torch.Tensor | None = None
    swap_pairs: Sequence[tuple[int, int]] = ()
    has_labels = frozenset({"image", "mask"})

    @abstractmethod
    def list_pairs(self, split: str) -> tuple[list[tuple[str, str]], list[str]]:
        """``(image_path, mask_path)`` pairs of ``split``, and the paths found missing."""

    def make_dataset(self, split: str) -> VTDataset:
        pairs, missing = self.list_pairs(split)
        self.drop_missing(missing, f"{split} files")
        train = split == "train"
        transform = segmentation_train(self.image_size, self.swap_pairs) if train else segmentation_eval()
        dataset = SegmentationDataset(pairs, self.num_raw_classes, self.remap, transform, self.skip_bad)
        if not train:
            dataset.collate_fn = collate_original_size
        return dataset
