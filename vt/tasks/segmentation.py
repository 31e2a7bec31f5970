"""Semantic segmentation: FPN and VT-FPN segmenters (method §4, §6)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from vt.models import VTFPNConfig
from vt.models.registry import non_default
from vt.tasks.base import VTTask
from vt.tasks.recipes import SEGMENTATION_RECIPES


class SegmentationTask(VTTask):
    """Per-pixel cross-entropy ignoring ``ignore_index``, mIoU and pixel accuracy.

    Batches need ``"image"`` ``(B, 3, H, W)`` and ``"mask"`` ``(B, H, W)``; the model maps images to
    logits ``(B, num_classes, H, W)``. mIoU is accumulated over the whole validation set (one
    confusion matrix, synchronised across devices) and averages the classes that occur in the
    target or the prediction. Recipes: ``"fpn_1x"`` (COCO-Stuff) and ``"fpn_lip"`` (LIP); see
    :mod:`vt.tasks.recipes`.

    Args (besides those of :class:`~vt.tasks.base.VTTask`):
        name: a registered segmenter (``fpn_resnet50``, ``vtfpn_resnet50``, ...).
        recipe: ``"fpn_1x"`` or ``"fpn_lip"``.
        neck: the VT-FPN neck's settings (``--model.neck.num_tokens 16``); a setting changed for
            an FPN segmenter is an error.
        backbone_weights: a local checkpoint that initialises the backbone (torchvision ``.pth`` or
            a ``vt`` classifier ``.ckpt``); not kept in the checkpoint's model arguments, as the
            trained weights replace it.
        ignore_index: the mask value of unlabeled pixels (the datamodule's, linked by the CLI; 255
            in every `vt.data` dataset).
    """

    task = "segmentation"
    recipes = SEGMENTATION_RECIPES
    target_key = "mask"
    class_names_key = "seg_class_names"
    monitor = "val/miou"

    def __init__(
        self,
        name: str = "vtfpn_resnet50",
        recipe: str = "fpn_1x",
        neck: VTFPNConfig = VTFPNConfig(),
        backbone_weights: str | None = None,
        ignore_index: int = 255,
        **kwargs: Any,
    ) -> None:
        self.ignore_index = ignore_index  # the metrics, built by the base, need it
        settings = non_default(neck) | ({"backbone_weights": backbone_weights} if backbone_weights else {})
        super().__init__(name=name, recipe=recipe, settings=settings, **kwargs)

    def make_metrics(self, num_classes: int) -> MetricCollection:
        return MetricCollection(
            {
                "miou": MulticlassJaccardIndex(num_classes, average="macro", ignore_index=self.ignore_index),
                "pixel_acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=self.ignore_index),
            }
        )

    def predictions(self, logits: Tensor) -> Tensor:
        """Class ids ``(B, H, W)``: the metrics need no per-class scores, and this saves their memory."""
        return logits.argmax(dim=1)
