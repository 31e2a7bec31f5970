"""Reading images and label masks from disk, and the two file-backed datasets built on them.

Every image comes out as 8-bit RGB whatever its mode on disk (grayscale, CMYK, RGBA, palette,
16-bit); every mask as the 8-bit class ids of a single-channel PNG. A file that cannot be used
raises `BadSampleError` with its path, which `VTDataset` turns into fail-fast or skip-and-count.
Classification images are turned upright by their EXIF orientation tag; a segmentation image keeps
its stored pixels, on which its mask was drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from vt.data.base import IGNORE_INDEX, BadSampleError, Sample, Transform, VTDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL's own conversion clips 16-bit grey to 255 (a white image); we keep the high byte instead.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")
# Formats whose compression changes pixel values: a label mask saved so has invented class ids
# along every edge, whatever its file name says.
_LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000")
# PIL raises these for unreadable, truncated or corrupt files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _to_rgb(img: PILImage.Image) -> PILImage.Image:
    if img.mode in _SIXTEEN_BIT_MODES:
        high_byte = np.clip(np.asarray(img, dtype=np.int64) >> 8, 0, 255).astype(np.uint8)
        return PILImage.fromarray(high_byte, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        # Going through RGBA silences PIL's warning about palette transparency.
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb(path: str, exif_orientation: bool = True) -> tv_tensors.Image:
    """The image at ``path`` as uint8 RGB ``(3, H, W)``; alpha is dropped, as torchvision does.

    With ``exif_orientation`` a photo is turned upright as its EXIF orientation tag says (as every
    image viewer shows it); without, the stored pixels are returned as they are.
    """
    try:
        with PILImage.open(path) as img:
            img.load()  # decode now, so a truncated file fails here rather than in a transform
            rgb = _to_rgb(ImageOps.exif_transpose(img) if exif_orientation else img)
    except _DECODE_ERRORS as err:
        raise BadSampleError(f"cannot read image {path}: {err}") from err
    return tv_tensors.Image(F.pil_to_tensor(rgb))


def load_mask(path: str, num_classes: int) -> tv_tensors.Mask:
    """The label PNG at ``path`` as uint8 class ids ``(H, W)``.

    Valid values are ``0 .. num_classes - 1`` and ``IGNORE_INDEX``; anything else, a mask that is
    not single-channel 8-bit (mode L, or P whose palette indices are the ids), or one stored with
    lossy compression (JPEG, whatever the file is named), is a bad sample.
    """
    try:
        with PILImage.open(path) as img:
            img.load()
            mode, file_format = img.mode, img.format
            lossy = file_format in _LOSSY_FORMATS or "jpeg" in str(img.info.get("compression", ""))
            ids = np.array(img)
    except _DECODE_ERRORS as err:
        raise BadSampleError(f"cannot read mask {path}: {err}") from err
    if lossy:
        raise BadSampleError(
            f"mask {path} is stored as lossy {file_format} (its compression invents label values along "
            f"edges); save the masks as PNG from the original labels"
        )
    if mode not in ("L", "P"):
        raise BadSampleError(
            f"mask {path} has PIL mode {mode}; expected an 8-bit single-channel PNG of class ids (mode L or P)"
        )
    bad = np.unique(ids[(ids >= num_classes) & (ids != IGNORE_INDEX)])
    if bad.size:
        raise BadSampleError(
            f"mask {path} has label values {bad[:10].tolist()} outside 0..{num_classes - 1} "
            f"(and {IGNORE_INDEX} = ignore)"
        )
    return tv_tensors.Mask(torch.from_numpy(ids))


class ImageFolderDataset(VTDataset):
    """Labelled image files: sample ``{"image": uint8 (3, H, W), "label": int}``."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(transform, skip_bad)
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        path, label = self.samples[index]
        return {"image": load_rgb(path), "label": label}


class SegmentationDataset(VTDataset):
    """Image/mask file pairs: sample ``{"image": uint8 (3, H, W), "mask": uint8 (H, W)}``.

    Args:
        pairs: ``(image_path, mask_path)`` per sample.
        num_raw_classes: valid raw mask ids are ``0 .. num_raw_classes - 1`` (plus 255).
        remap: optional uint8 lookup table ``(256,)`` from raw ids to training ids (255 = ignore).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        num_raw_classes: int,
        remap: torch.Tensor | None = None,
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(transform, skip_bad)
        self.pairs = list(pairs)
        self.num_raw_classes = num_raw_classes
        self.remap = remap

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[index]
        # The stored pixels, ignoring EXIF orientation: masks are annotated on those (COCO's are).
        image = load_rgb(image_path, exif_orientation=False)
        mask = load_mask(mask_path, self.num_raw_classes)
        if image.shape[-2:] != mask.shape:
            raise BadSampleError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                f"{image.shape[2]}x{image.shape[1]} (width x height); they must match"
            )
        if self.remap is not None:
            mask = tv_tensors.Mask(self.remap[mask.long()])
        return {"image": image, "mask": mask}


def list_images(folder: str) -> list[str]:
    """Sorted names of the image files directly inside ``folder``."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file() and is_image_file(e.name))
