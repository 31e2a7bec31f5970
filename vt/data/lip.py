"""LIP (Look Into Person): single-person human parsing, 20 classes, in its released layout."""

from __future__ import annotations

import os

from vt.data.base import check_layout
from vt.data.segmentation import SegmentationFilesDataModule

LIP_CLASSES = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks",
    "pants", "jumpsuits", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg",
    "left-shoe", "right-shoe",
)  # fmt: skip
# A mirrored person's left arm is their right arm: a flip must swap these labels.
LIP_FLIP_PAIRS = ((14, 15), (16, 17), (18, 19))
SPLIT_FOLDERS = {"train": ("train_images", "train_segmentations"), "val": ("val_images", "val_segmentations")}
LAYOUT = (
    "root/TrainVal_images/{train_images,val_images}/<id>.jpg, "
    "root/TrainVal_parsing_annotations/{train_segmentations,val_segmentations}/<id>.png and "
    "root/TrainVal_images/{train_id.txt,val_id.txt}"
)


class LIPDataModule(SegmentationFilesDataModule):
    """LIP human parsing: 20 mask classes (background + 19 parts), flips swap left and right.

    The samples of a split are the ids listed in ``TrainVal_images/<split>_id.txt``; masks are
    8-bit PNGs of ids 0..19. The layout is checked on construction. ``class_names`` (and
    ``seg_class_names``, the same list) are LIP's 20 labels in id order, ``"background"`` first.

    Args:
        root: the folder holding ``TrainVal_images/`` and ``TrainVal_parsing_annotations/``.
        image_size: training crop side (the paper crops 473); evaluation resizes the network's input
            to this longer side and scores at the original size (`vt.tasks.seg_eval`).
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        recipe: accepted for a uniform interface; segmentation has its own augmentation.
        skip_bad: skip and count bad or missing images and masks instead of failing.
        seed: seeds the training shuffle order.
    """

    num_raw_classes = len(LIP_CLASSES)
    swap_pairs = LIP_FLIP_PAIRS

    def __init__(
        self,
        root: str,
        image_size: int = 473,
        batch_size: int = 8,
        num_workers: int = 4,
        recipe: str = "standard",
        skip_bad: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(image_size, batch_size, num_workers, recipe, skip_bad, seed)
        self.save_hyperparameters()
        self.root = root
        self.num_classes = self.num_seg_classes = len(LIP_CLASSES)
        self.class_names = self.seg_class_names = list(LIP_CLASSES)
        self._check_layout()

    def _check_layout(self) -> None:
        def check(ok: bool, problem: str, fix: str) -> None:
            check_layout(ok, "LIP", self.root, problem, LAYOUT, fix)

        check(
            os.path.isdir(self.root),
            "no such directory",
            "pass --data.root pointing at your extracted LIP copy (nothing is downloaded)",
        )
        for split, (images, masks) in SPLIT_FOLDERS.items():
            for path in (
                os.path.join(self.root, "TrainVal_images", images),
                os.path.join(self.root, "TrainVal_parsing_annotations", masks),
            ):
                check(
                    os.path.isdir(path),
                    f"no folder {path}",
                    "extract TrainVal_images.zip and TrainVal_parsing_annotations.zip into root "
                    "(move a doubly nested folder up one level)",
                )
            id_list = os.path.join(self.root, "TrainVal_images", f"{split}_id.txt")
            check(os.path.isfile(id_list), f"no id list {id_list}", "restore it from TrainVal_images.zip")

    def list_pairs(self, split: str) -> tuple[list[tuple[str, str]], list[str]]:
        images, masks = SPLIT_FOLDERS[split]
        with open(os.path.join(self.root, "TrainVal_images", f"{split}_id.txt")) as lines:
            ids = [line.strip() for line in lines if line.strip()]
        pairs, missing = [], []
        for sample_id in ids:
            image = os.path.join(self.root, "TrainVal_images", images, f"{sample_id}.jpg")
            mask = os.path.join(self.root, "TrainVal_parsing_annotations", masks, f"{sample_id}.png")
            absent = [path for path in (image, mask) if not os.path.isfile(path)]
            if absent:
                missing += absent
            else:
                pairs.append((image, mask))
        return pairs, missing
