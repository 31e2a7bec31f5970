"""COCO-Stuff-164k: semantic segmentation of 80 thing and 91 stuff classes."""

from __future__ import annotations

import os

import torch

from vt.data.base import IGNORE_INDEX, DatasetError, check_layout
from vt.data.files import list_images
from vt.data.segmentation import SegmentationFilesDataModule

NUM_RAW_CLASSES = 182  # label PNG ids 0..181: 0-90 things (COCO category id - 1), 91-181 stuff
FIRST_STUFF_ID = 91
# COCO's 91 thing ids include 11 that no annotation uses (category ids 12, 26, 29, ... minus 1).
UNUSED_THING_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
CLASS_SETS = {"182": 182, "171": 171, "stuff": 91}  # name -> number of training classes
# The names of raw ids 0..181, as in COCO-Stuff's labels.txt: COCO's 91 thing categories (the 11
# unused ones included, with the names of the COCO paper) then the 91 stuff classes.
RAW_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
    "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard",
    "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone",
    "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass",
    "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss",
    "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic",
    "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad",
    "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip
SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
LAYOUT = (
    "root/images/{train2017,val2017}/<name>.jpg and root/annotations/{train2017,val2017}/<name>.png "
    "(8-bit label maps, ids 0..181, 255 = unlabeled)"
)


def kept_raw_ids(class_set: str) -> list[int]:
    """The raw ids a class set trains on, in training-id order (raises `DatasetError` if unknown).

    ``"182"``: every raw id (11 of them never occur); ``"171"``: all but the 11 unused thing ids;
    ``"stuff"``: the 91 stuff classes (every thing pixel is ignored: the paper's setting).
    """
    if class_set == "182":
        kept = list(range(NUM_RAW_CLASSES))
    elif class_set == "171":
        kept = [i for i in range(NUM_RAW_CLASSES) if i not in UNUSED_THING_IDS]
    elif class_set == "stuff":
        kept = list(range(FIRST_STUFF_ID, NUM_RAW_CLASSES))
    else:
        raise DatasetError(f"unknown COCO-Stuff class set {class_set!r}; choose one of {', '.join(CLASS_SETS)}")
    return kept


def class_remap(class_set: str) -> torch.Tensor:
    """The uint8 lookup table ``(256,)`` from raw label ids to training ids for a class set.

    The raw ids of `kept_raw_ids` become ``0, 1, ...`` in order; every other id, and 255, is 255.
    """
    kept = kept_raw_ids(class_set)
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    lut[kept] = torch.arange(len(kept), dtype=torch.uint8)
    return lut


class COCOStuffDataModule(SegmentationFilesDataModule):
    """COCO-Stuff-164k: every image of ``images/<split>2017`` with its ``annotations`` label PNG.

    Args:
        root: the folder holding ``images/`` and ``annotations/``.
        image_size: training crop side; evaluation resizes the network's input to this longer side
            and scores at the original size (`vt.tasks.seg_eval`).
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        recipe: accepted for a uniform interface; segmentation has its own augmentation.
        skip_bad: skip and count bad images, bad masks and images without a mask instead of failing.
        seed: seeds the training shuffle order.
        class_set: ``"171"`` (the common training set), ``"182"`` (raw ids) or ``"stuff"``
            (91 stuff classes, things ignored: the paper's setting); see `class_remap`.

    ``class_names`` (and ``seg_class_names``, the same list) name the training ids of the class set:
    COCO-Stuff's own names (`RAW_CLASS_NAMES`) of the raw ids it keeps.
    """

    num_raw_classes = NUM_RAW_CLASSES

    def __init__(
        self,
        root: str,
        image_size: int = 512,
        batch_size: int = 8,
        num_workers: int = 4,
        recipe: str = "standard",
        skip_bad: bool = False,
        seed: int = 0,
        class_set: str = "171",
    ) -> None:
        super().__init__(image_size, batch_size, num_workers, recipe, skip_bad, seed)
        self.save_hyperparameters()
        self.root = root
        self.class_set = class_set
        self.remap = class_remap(class_set)
        self.num_classes = self.num_seg_classes = CLASS_SETS[class_set]
        self.class_names = self.seg_class_names = [RAW_CLASS_NAMES[i] for i in kept_raw_ids(class_set)]
        self._check_layout()

    def _check_layout(self) -> None:
        check_layout(
            os.path.isdir(self.root),
            "COCO-Stuff",
            self.root,
            "no such directory",
            LAYOUT,
            "pass --data.root pointing at your COCO-Stuff-164k copy (nothing is downloaded)",
        )
        for kind, fix in (
            ("images", "extract train2017.zip and val2017.zip into root/images/"),
            ("annotations", "extract stuffthingmaps_trainval2017.zip into root/annotations/"),
        ):
            for folder in SPLIT_FOLDERS.values():
                path = os.path.join(self.root, kind, folder)
                check_layout(os.path.isdir(path), "COCO-Stuff", self.root, f"no folder {path}", LAYOUT, fix)

    def list_pairs(self, split: str) -> tuple[list[tuple[str, str]], list[str]]:
        image_dir = os.path.join(self.root, "images", SPLIT_FOLDERS[split])
        mask_dir = os.path.join(self.root, "annotations", SPLIT_FOLDERS[split])
        masks = set(list_images(mask_dir))
        pairs, missing = [], []
        for name in list_images(image_dir):
            mask = os.path.splitext(name)[0] + ".png"
            if mask in masks:
                pairs.append((os.path.join(image_dir, name), os.path.join(mask_dir, mask)))
            else:
                missing.append(os.path.join(mask_dir, mask))
        return pairs, missing
