"""Semantic segmentation scored the way the field scores it (mmsegmentation, Detectron2).

The network sees each image resized so that its longer side is ``size × scale``; its logits are
resized (bilinear) back to the image's **original** size and scored against the original,
unresized mask. Optional test-time augmentation: a horizontal flip (the flipped view's logits are
flipped back and its left/right labels swapped back, `vt.data.transforms.flip_permutation`) and
several scales, whose softmax probabilities are averaged at the original size; optional
sliding-window inference over network inputs larger than the window.

Memory does not grow with the original image size beyond the image itself: every view's logits
stay at network resolution (``size × scale``), and the original-size output is built a strip of
rows at a time (`segment`), so a 2000×2000 image with 171 classes never holds its full
``(171, 2000, 2000)`` scores.

`ConfusionMatrix` accumulates the scores: mIoU, per-class IoU, mean class accuracy (mAcc) and pixel
accuracy (aAcc), with the ignore label left out. Plain torch and torchmetrics, no Lightning: the
task (`vt.tasks.segmentation`) and prediction use the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from vt.data.base import IGNORE_INDEX
from vt.data.transforms import flip_permutation

Segmenter = Callable[[Tensor], Tensor]  # images (B, 3, h, w) -> logits (B, K, h', w'), same field of view
# Elements (B x views x K x rows x W) of one strip of original-size scores: 64 MiB of float32.
STRIP_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class SegmentationProtocol:
    """How a segmenter's prediction at an image's original size is made.

    Args:
        size: side of the network input at scale 1.0 (the datamodule's ``image_size``, the
            training crop); ``None`` feeds the image at its own size.
        side: which side ``size`` sets: ``"longer"`` (the whole image within the training crop's
            side) or ``"shorter"`` (Detectron2's test resize: shorter side 800 at COCO-Stuff).
        scales: network input sizes relative to ``size``; several average their probabilities.
        flip: also run each scale on the horizontally flipped image (flip TTA).
        flip_pairs: labels a horizontal flip exchanges (LIP's left/right parts), swapped back.
        window: sliding-window side over network inputs larger than it (``None``: the whole input).
        stride: step between windows; ``None``: two thirds of ``window`` (mmsegmentation's 512/341).
        min_side: network inputs smaller than this are padded (bottom/right) up to it and the
            padding's logits dropped (the segmenter's ``min_input_size``).
    """

    size: int | None = None
    side: Literal["longer", "shorter"] = "longer"
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    flip_pairs: tuple[tuple[int, int], ...] = ()
    window: int | None = None
    stride: int | None = None
    min_side: int = 1

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise ValueError(f"evaluation size must be a positive side in pixels, got {self.size}")
        if self.side not in ("longer", "shorter"):
            raise ValueError(f"the evaluation size sets the longer or the shorter side, not {self.side!r}")
        if not self.scales or any(not math.isfinite(s) or s <= 0 for s in self.scales):
            raise ValueError(f"test scales must be positive numbers, e.g. 0.5 0.75 1.0 1.5; got {self.scales}")
        if self.window is not None and self.window < self.min_side:
            raise ValueError(f"window {self.window} is smaller than the segmenter's least input side {self.min_side}")
        if self.stride is not None and (self.window is None or not 1 <= self.stride <= self.window):
            raise ValueError(f"stride {self.stride} needs a window and must be in 1..window ({self.window})")

    @property
    def views(self) -> list[tuple[float, bool]]:
        """``(scale, flipped)`` of every view, in the order they run."""
        return [(scale, flip) for scale in self.scales for flip in ((False, True) if self.flip else (False,))]

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``original resolution; input longer side 473; scales 1.0; no flip``."""
        size = f"input {self.side} side {self.size}" if self.size else "input at the image's own size"
        scales = " ".join(f"{s:g}" for s in self.scales)
        flip = "flip" if self.flip else "no flip"
        window = f"; sliding window {self.window} stride {self._stride()}" if self.window else ""
        return f"original resolution; {size}; scales {scales}; {flip}{window}"

    def _stride(self) -> int:
        assert self.window is not None
        return self.stride or max(1, self.window * 2 // 3)

    def input_size(self, height: int, width: int, scale: float) -> tuple[int, int]:
        """The network input ``(h, w)`` of an ``height × width`` image at ``scale`` (aspect kept)."""
        reference = max(height, width) if self.side == "longer" else min(height, width)
        ratio = round((self.size or reference) * scale) / reference
        return max(1, round(height * ratio)), max(1, round(width * ratio))


class Segmentation(NamedTuple):
    """`segment`'s result for a stack of images of one original size ``H × W``.

    ``prediction``: int64 ``(B, H, W)``; ``nll``: the summed negative log-likelihood of the labelled
    target pixels (0 without a target); ``labelled``: how many target pixels were labelled.
    """

    prediction: Tensor
    nll: Tensor
    labelled: int


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets along one side: every ``stride``, the last one flush with the end (no pixel missed)."""
    if length <= window:
        return [0]
    return list(range(0, length - window, stride)) + [length - window]


def _run(model: Segmenter, x: Tensor, protocol: SegmentationProtocol) -> Tensor:
    """Logits of network inputs ``x: (B, 3, h, w)``: padded up to ``min_side``, windowed if asked.

    Returns ``(B, K, h', w')``, the model's resolution; with windows, or padding, ``(B, K, h, w)``.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = max(0, protocol.min_side - height), max(0, protocol.min_side - width)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # zero: the mean colour after normalisation
    if protocol.window is None or max(x.shape[-2:]) <= protocol.window:
        logits = model(x)
    else:
        logits = _slide(model, x, protocol.window, protocol._stride())
    if pad_h or pad_w:
        # Keep the image's share of the output, whatever resolution the model answers in.
        rows = round(logits.shape[-2] * height / x.shape[-2])
        cols = round(logits.shape[-1] * width / x.shape[-1])
        logits = logits[..., :rows, :cols]
    return logits


def _slide(model: Segmenter, x: Tensor, window: int, stride: int) -> Tensor:
    """Window-averaged logits ``(B, K, h, w)`` of ``x: (B, 3, h, w)``; every pixel is in a window."""
    height, width = x.shape[-2:]
    total: Tensor | None = None
    count = x.new_zeros(1, 1, height, width)
    for top in _window_starts(height, window, stride):
        for left in _window_starts(width, window, stride):
            crop = x[..., top : top + window, left : left + window]
            logits = model(crop)
            if logits.shape[-2:] != crop.shape[-2:]:
                logits = F.interpolate(logits, size=crop.shape[-2:], mode="bilinear", align_corners=False)
            if total is None:
                total = logits.new_zeros(*logits.shape[:2], height, width, dtype=torch.float32)
            total[..., top : top + crop.shape[-2], left : left + crop.shape[-1]] += logits
            count[..., top : top + crop.shape[-2], left : left + crop.shape[-1]] += 1
    assert total is not None
    return total / count


def view_logits(model: Segmenter, images: Tensor, protocol: SegmentationProtocol) -> list[Tensor]:
    """Each view's float32 logits ``(B, K, h_v, w_v)`` of ``images: (B, 3, H, W)``, at network resolution.

    A flipped view comes back unflipped with its mirrored labels swapped back, so every view is in
    the original image's frame.
    """
    height, width = images.shape[-2:]
    views = []
    for scale, flipped in protocol.views:
        size = protocol.input_size(height, width, scale)
        x = images if size == (height, width) else F.interpolate(
            images, size=size, mode="bilinear", align_corners=False, antialias=True
        )
        logits = _run(model, x.flip(-1) if flipped else x, protocol).float()
        if flipped:
            logits = logits.flip(-1)[:, flip_permutation(protocol.flip_pairs, logits.shape[1]).to(logits.device)]
        views.append(logits)
    return views


def _resize_rows(logits: Tensor, size: tuple[int, int], top: int, bottom: int) -> Tensor:
    """Rows ``top:bottom`` of ``logits: (B, K, h, w)`` resized bilinearly to ``size``: ``(B, K, rows, W)``.

    The same values as ``F.interpolate(logits, size, mode="bilinear", align_corners=False)[..., top:bottom, :]``
    (sampling at output pixel centres, clamped at the borders) without building the whole output.
    """
    height, width = size
    if logits.shape[-2:] == size:
        return logits[..., top:bottom, :]
    kw = {"device": logits.device, "dtype": logits.dtype}
    ys = (torch.arange(top, bottom, **kw) + 0.5) * (2 / height) - 1
    xs = (torch.arange(width, **kw) + 0.5) * (2 / width) - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(len(logits), -1, -1, -1)
    return F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _strips(views: Sequence[Tensor], size: tuple[int, int], max_elements: int) -> Iterator[tuple[int, Tensor]]:
    """``(top, log_probs)`` strips of the original-size scores: ``log_probs: (B, K, rows, W)``.

    One view: its resized logits' log-softmax; several: the log of their mean softmax probability.
    """
    batch, classes = views[0].shape[:2]
    rows = max(1, max_elements // (batch * classes * size[1] * len(views)))
    for top in range(0, size[0], rows):
        bottom = min(top + rows, size[0])
        log_probs = torch.stack([_resize_rows(v, size, top, bottom).log_softmax(1) for v in views])
        yield top, log_probs[0] if len(views) == 1 else log_probs.logsumexp(0) - math.log(len(views))


@torch.no_grad()
def segment(
    model: Segmenter,
    images: Tensor,
    protocol: SegmentationProtocol,
    target: Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    max_elements: int = STRIP_ELEMENTS,
) -> Segmentation:
    """The prediction at original resolution of ``images: (B, 3, H, W)`` (normalised, one size).

    With ``target: (B, H, W)`` (the original mask) it also sums the negative log-likelihood of its
    labelled pixels: the validation loss at original resolution. The evaluation protocol in one
    function; see the module docstring.
    """
    views = view_logits(model, images, protocol)
    size = (images.shape[-2], images.shape[-1])
    prediction = torch.empty(images.shape[0], *size, dtype=torch.long, device=images.device)
    nll, labelled = images.new_zeros((), dtype=torch.float32), 0
    for top, log_probs in _strips(views, size, max_elements):
        rows = slice(top, top + log_probs.shape[-2])
        prediction[:, rows] = log_probs.argmax(1).to(images.device)
        if target is not None:
            strip = target[:, rows].to(log_probs.device)
            nll += F.nll_loss(log_probs, strip, ignore_index=ignore_index, reduction="sum").to(nll.device)
            labelled += int((strip != ignore_index).sum())
    return Segmentation(prediction, nll, labelled)


@torch.no_grad()
def segment_scores(model: Segmenter, images: Tensor, protocol: SegmentationProtocol) -> Tensor:
    """The whole original-size log-probabilities ``(B, K, H, W)`` of ``images: (B, 3, H, W)``.

    For small images and inspection (probability maps, tests); `segment` keeps memory bounded.
    """
    views = view_logits(model, images, protocol)
    size = (images.shape[-2], images.shape[-1])
    return torch.cat([log_probs for _, log_probs in _strips(views, size, STRIP_ELEMENTS)], dim=-2)


def crop_to_sizes(images: Tensor, sizes: Tensor | None) -> list[Tensor]:
    """The images ``(3, H_i, W_i)`` of a padded batch ``images: (B, ..., H, W)`` with ``sizes: (B, 2)``."""
    if sizes is None:
        return list(images)
    return [image[..., : int(h), : int(w)] for image, (h, w) in zip(images, sizes.tolist())]


class ConfusionMatrix(Metric):
    """Pixel counts ``matrix[target, prediction]`` over a whole split, and the scores they give.

    ``update(prediction, target)`` takes class ids of any (equal) shape; ``ignore_index`` target
    pixels count for nothing. `compute` gives mIoU (mean IoU over the classes present in the target
    or the prediction: a class in neither has no IoU), mAcc (mean recall over the classes present
    in the target) and aAcc (labelled pixels predicted right), as mmsegmentation reports them.
    Summed across processes.
    """

    full_state_update = False
    matrix: Tensor

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state("matrix", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        keep = target != self.ignore_index
        target, prediction = target[keep], prediction[keep]
        if len(target) and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(
                f"mask values must be 0..{self.num_classes - 1} or {self.ignore_index} (ignore), got "
                f"{sorted(set(target.unique().tolist()) - set(range(self.num_classes)))[:5]}; check num_classes"
            )
        self.matrix += torch.bincount(
            target * self.num_classes + prediction, minlength=self.num_classes**2
        ).reshape(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, Tensor]:
        return scores(self.matrix)

    def report(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """The scores as plain numbers: ``mIoU``, ``mAcc``, ``aAcc`` and ``classes``, one row per class.

        Each row: ``name``, ``IoU``, ``Acc`` (``None`` where undefined) and ``pixels`` (labelled
        target pixels of the class). Summed over every process; ready for ``json.dump``.
        """
        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        with self.sync_context():
            matrix = self.matrix.clone()
        iou, accuracy = per_class(matrix)

        def plain(value: Tensor) -> float | None:
            return None if math.isnan(float(value)) else float(value)

        return {
            **{key: plain(value) for key, value in scores(matrix).items()},
            "classes": [
                {"name": name, "IoU": plain(i), "Acc": plain(a), "pixels": int(p)}
                for name, i, a, p in zip(names, iou, accuracy, matrix.sum(1))
            ],
        }


def per_class(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class IoU and accuracy (recall), float64 ``(K,)`` each, of ``matrix[target, prediction]``.

    NaN where undefined: IoU of a class neither labelled nor predicted, accuracy of one never labelled.
    """
    matrix = matrix.double()
    hits, targets, predicted = matrix.diagonal(), matrix.sum(1), matrix.sum(0)
    union = targets + predicted - hits
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=matrix.device)
    iou = torch.where(union > 0, hits / union.clamp(min=1), nan)
    accuracy = torch.where(targets > 0, hits / targets.clamp(min=1), nan)
    return iou, accuracy


def scores(matrix: Tensor) -> dict[str, Tensor]:
    """mIoU, mAcc and aAcc (float32 scalars) of a confusion matrix ``(K, K)``, ``matrix[target, prediction]``."""
    iou, accuracy = per_class(matrix)
    return {
        "mIoU": iou.nanmean().float(),
        "mAcc": accuracy.nanmean().float(),
        "aAcc": (matrix.diagonal().sum() / matrix.sum().clamp(min=1)).float(),
    }
