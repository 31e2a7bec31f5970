"""ImageNet-1k (or any class-folder subset of it) in torchvision's `ImageFolder` layout."""

from __future__ import annotations

import os

from torchvision.datasets.folder import find_classes, make_dataset

from vt.data.base import VTDataModule, VTDataset, check_layout, check_min_crop_area
from vt.data.files import ImageFolderDataset, is_image_file, list_images
from vt.data.transforms import classification_eval, classification_train

LAYOUT = "root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG (one folder per class, val included)"


def _class_folders(folder: str) -> list[str]:
    """The sorted class folders of ``folder`` (torchvision's `find_classes`), ``[]`` for none."""
    try:
        return find_classes(folder)[0]
    except FileNotFoundError:  # find_classes's error when there is no class folder
        return []


class ImageNetDataModule(VTDataModule):
    """ImageNet classification: batches ``{"image": (B, 3, S, S), "label": (B,)}``.

    Classes are the sorted ``train/`` folder names (1000 wnids for ImageNet-1k; a subset works
    too); ``class_names`` are those wnids, the only names the layout carries. The layout is
    checked on construction, so a wrong root fails before any training.

    Args:
        root: the folder holding ``train/`` and ``val/``.
        image_size: training crop and evaluation centre crop (from ``image_size / 0.875``).
        batch_size: samples per batch.
        num_workers: DataLoader workers (JPEG decoding is the bottleneck; use several).
        recipe: ``"standard"`` or ``"advanced"`` training augmentation (method §6).
        skip_bad: skip and count unreadable images instead of failing on the first.
        seed: seeds the training shuffle order.
        min_crop_area: the smallest random-resized crop, as a fraction of the image's area
            (ImageNet's 0.08, the paper's recipe; larger keeps small objects in the crop).
    """

    has_labels = frozenset({"image", "label"})

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        recipe: str = "standard",
        skip_bad: bool = False,
        seed: int = 0,
        min_crop_area: float = 0.08,
    ) -> None:
        super().__init__(image_size, batch_size, num_workers, recipe, skip_bad, seed)
        self.save_hyperparameters()
        check_min_crop_area(min_crop_area, "--data.min_crop_area")
        self.min_crop_area = min_crop_area
        self.root = root
        self.class_names = self._check_layout()
        self.num_classes = len(self.class_names)
        self.num_seg_classes = 0
        self.seg_class_names: list[str] = []

    def _check_layout(self) -> list[str]:
        """The class names; raises `DatasetError` unless ``root`` has the ImageNet layout."""

        def check(ok: bool, problem: str, fix: str) -> None:
            check_layout(ok, "ImageNet", self.root, problem, LAYOUT, fix)

        check(
            os.path.isdir(self.root),
            "no such directory",
            "pass --data.root pointing at your ImageNet copy (nothing is downloaded)",
        )
        for split in ("train", "val"):
            check(
                os.path.isdir(os.path.join(self.root, split)),
                f"no {split}/ folder",
                f"extract the {split} set into {os.path.join(self.root, split)}",
            )
        classes = _class_folders(os.path.join(self.root, "train"))
        check(bool(classes), "train/ has no class folders", "extract each class archive into train/<wnid>/")
        val = os.path.join(self.root, "val")
        loose = list_images(val)
        check(
            not loose,
            f"val/ holds {len(loose)} images directly instead of in class folders",
            "sort val/ into val/<wnid>/ folders, e.g. with the widely used valprep.sh script",
        )
        val_classes = _class_folders(val)
        check(bool(val_classes), "val/ has no class folders", "extract the val set into val/<wnid>/ folders")
        unknown = sorted(set(val_classes) - set(classes))
        check(
            not unknown,
            f"val/ has class folders that train/ lacks: {', '.join(unknown[:5])}",
            "give train/ and val/ the same class folders",
        )
        return classes

    def make_dataset(self, split: str) -> VTDataset:
        folder = os.path.join(self.root, split)
        class_to_idx = {name: label for label, name in enumerate(self.class_names)}
        listed = make_dataset(folder, class_to_idx, is_valid_file=is_image_file, allow_empty=True)
        # A broken symlink (a dataset copy moved away) is a missing file: fail, or skip and count it.
        samples = [(path, label) for path, label in listed if os.path.isfile(path)]
        self.drop_missing([path for path, _ in listed if not os.path.isfile(path)], f"{split} images")
        found = {label for _, label in samples}
        # A split without some class folder is fine (a subset); a class folder without images is not.
        empty = next((os.path.join(folder, name) for name, label in class_to_idx.items()
                      if label not in found and os.path.isdir(os.path.join(folder, name))), None)
        check_layout(
            empty is None,
            "ImageNet",
            self.root,
            f"class folder {empty} holds no images",
            LAYOUT,
            "restore its images, or remove that class folder from train/ and val/",
        )
        if split == "train":
            transform = classification_train(self.image_size, self.recipe, self.min_crop_area)
        else:
            transform = classification_eval(self.image_size)
        return ImageFolderDataset(samples, transform, self.skip_bad)
