"""The shared part of the file-backed segmentation datamodules (LIP, COCO-Stuff)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch

from vt.data.base import VTDataModule, VTDataset
from vt.data.files import SegmentationDataset
from vt.data.transforms import segmentation_eval, segmentation_train


class SegmentationFilesDataModule(VTDataModule):
    """Image/mask pairs on disk: batches ``{"image": (B, 3, S, S), "mask": (B, S, S)}``.

    Training: random scale, ``S x S`` crop, flip (`vt.data.transforms.segmentation_train`);
    evaluation: the whole image, longer side ``S``, padded with ignore. ``recipe`` does not apply.
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
        if split == "train":
            transform = segmentation_train(self.image_size, self.swap_pairs)
        else:
            transform = segmentation_eval(self.image_size)
        return SegmentationDataset(pairs, self.num_raw_classes, self.remap, transform, self.skip_bad)
