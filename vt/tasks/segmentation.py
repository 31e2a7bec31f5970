"""Semantic segmentation: FPN and VT-FPN segmenters (method §4, §6)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from vt.models import VTFPNConfig
from vt.models.registry import non_default
from vt.tasks.base import Batch, VTTask
from vt.tasks.recipes import SEGMENTATION_RECIPES
from vt.tasks.seg_eval import ConfusionMatrix, SegmentationProtocol, crop_to_sizes, segment

# What each evaluation stage logs, from `ConfusionMatrix.compute`'s keys. Validation keeps the
# names its checkpoints and logs have always used (``val/pixel_acc`` is aAcc).
METRIC_NAMES = {
    "val": {"mIoU": "val/miou", "mAcc": "val/macc", "aAcc": "val/pixel_acc"},
    "test": {"mIoU": "test/mIoU", "mAcc": "test/mAcc", "aAcc": "test/aAcc"},
}


class SegmentationTask(VTTask):
    """Per-pixel cross-entropy ignoring ``ignore_index``; mIoU, mAcc and pixel accuracy at original resolution.

    Training batches need ``"image"`` ``(B, 3, H, W)`` and ``"mask"`` ``(B, H, W)``; the model maps
    images to logits ``(B, num_classes, H, W)``. Evaluation batches may add ``"size"`` ``(B, 2)``,
    each image's original ``(height, width)`` inside a padded batch (the file datamodules' eval
    batches, `vt.data.segmentation.collate_original_size`).

    Evaluation (`vt.tasks.seg_eval.segment`) feeds each image resized so its longer side (or
    shorter, ``eval_side``) is ``eval_size`` (default: the datamodule's ``image_size``, the training
    crop), resizes the logits
    back to the image's original size and scores them against the original mask, one confusion
    matrix over the whole split, synchronised across devices (mIoU averages the classes present
    in the target or the prediction). ``test`` uses ``tta``, ``test_scales``, ``window`` and
    ``stride``; validation (during ``fit`` and ``validate``) the cheaper single scale without
    flip, unless ``val_protocol="test"``. Logged: ``val/miou``, ``val/macc``, ``val/pixel_acc``
    (= aAcc), ``val/loss``; ``test/mIoU``, ``test/mAcc``, ``test/aAcc``, ``test/loss``. After each
    evaluation epoch ``last_eval_report`` holds the scores with per-class IoU and accuracy by
    class name (`ConfusionMatrix.report`) and the protocol in words. ``predict_step`` returns the
    class-id masks at original resolution under the test protocol. Recipes: ``"fpn_1x"``
    (COCO-Stuff) and ``"fpn_lip"`` (LIP); see :mod:`vt.tasks.recipes`.

    The arguments besides those of :class:`~vt.tasks.base.VTTask`:

    Args:
        name: a registered segmenter (``fpn_resnet50``, ``vtfpn_resnet50``, ...).
        recipe: ``"fpn_1x"`` or ``"fpn_lip"``.
        neck: the VT-FPN neck's settings (``--model.neck.num_tokens 16``); a setting changed for
            an FPN segmenter is an error.
        backbone_weights: a local checkpoint that initialises the backbone (torchvision ``.pth`` or
            a ``vt`` classifier ``.ckpt``); not kept in the checkpoint's model arguments, as the
            trained weights replace it.
        ignore_index: the mask value of unlabeled pixels (the datamodule's, linked by the CLI; 255
            in every `vt.data` dataset).
        eval_size: side of the network input at scale 1.0 in evaluation; ``None``: the
            datamodule's ``image_size`` (or, without one, each image's own size).
        eval_side: the side ``eval_size`` sets, ``"longer"`` (default) or ``"shorter"``
            (Detectron2's test resize; the paper's COCO-Stuff inputs are about 800×1216).
        tta: test-time augmentation of ``test`` and ``predict``: ``"none"`` or ``"flip"`` (each
            scale also on the mirrored image, its left/right labels swapped back with the
            datamodule's ``swap_pairs``).
        test_scales: network input sizes of ``test`` and ``predict``, relative to ``eval_size``;
            several average their softmax probabilities at the original size (mmsegmentation's
            multi-scale test: 0.5 0.75 1.0 1.25 1.5 1.75).
        window: sliding-window side for network inputs larger than it (``None``: whole input).
        stride: step between windows (``None``: two thirds of ``window``).
        val_protocol: ``"single_scale"`` (validation at scale 1.0, no flip) or ``"test"`` (the
            test protocol, TTA included, also in validation).
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
        eval_size: int | None = None,
        eval_side: Literal["longer", "shorter"] = "longer",
        tta: Literal["none", "flip"] = "none",
        test_scales: tuple[float, ...] = (1.0,),
        window: int | None = None,
        stride: int | None = None,
        val_protocol: Literal["single_scale", "test"] = "single_scale",
        **kwargs: Any,
    ) -> None:
        self.ignore_index = ignore_index  # the metrics, built by the base, need it
        # Checked here, where a bad value enters, rather than at the first evaluation.
        SegmentationProtocol(eval_size, eval_side, tuple(test_scales), window=window, stride=stride)
        if tta not in ("none", "flip"):
            raise ValueError(f"unknown tta {tta!r}; choose none or flip")
        if val_protocol not in ("single_scale", "test"):
            raise ValueError(f"unknown val_protocol {val_protocol!r}; choose single_scale or test")
        settings = non_default(neck) | ({"backbone_weights": backbone_weights} if backbone_weights else {})
        super().__init__(name=name, recipe=recipe, settings=settings, **kwargs)
        num_classes = self.hparams.num_classes
        # The confusion matrices of the evaluation protocol replace the base's validation metrics.
        self.val_metrics = ConfusionMatrix(num_classes, ignore_index)
        self.test_metrics = ConfusionMatrix(num_classes, ignore_index)
        self.last_eval_report: dict[str, Any] | None = None

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

    def eval_protocol(self, stage: str) -> SegmentationProtocol:
        """The protocol of ``stage`` (``"val"``, ``"test"``, ``"predict"``), the datamodule's size and flip pairs."""
        datamodule = getattr(self._trainer, "datamodule", None)
        full = stage != "val" or self.hparams.val_protocol == "test"
        return SegmentationProtocol(
            size=self.hparams.eval_size or getattr(datamodule, "image_size", None),
            side=self.hparams.eval_side,
            scales=tuple(self.hparams.test_scales) if full else (1.0,),
            flip=full and self.hparams.tta == "flip",
            flip_pairs=tuple(tuple(pair) for pair in getattr(datamodule, "swap_pairs", ())),
            window=self.hparams.window,
            stride=self.hparams.stride,
            min_side=getattr(self.eval_model, "min_input_size", 1),
        )

    def _evaluate(self, batch: Batch, stage: str) -> None:
        """Scores a batch at original resolution into ``stage``'s confusion matrix and logs its loss."""
        protocol = self.eval_protocol(stage)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        images, masks, sizes = batch["image"], batch["mask"], batch.get("size")
        nll, labelled = images.new_zeros(()), 0
        for image, mask in zip(_stacks(images, sizes, protocol), _stacks(masks, sizes, protocol)):
            result = segment(self.eval_model, image, protocol, mask, self.ignore_index)
            metrics.update(result.prediction, mask)
            nll, labelled = nll + result.nll, labelled + result.labelled
        self.log(f"{stage}/loss", nll / max(labelled, 1), sync_dist=True, batch_size=len(images))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[Tensor]:
        """Class ids at original resolution under the test protocol, one int64 ``(H_i, W_i)`` per image.

        ``batch``: ``"image"`` ``(B, 3, H, W)`` normalised, and ``"size"`` ``(B, 2)`` when padded.
        """
        protocol = self.eval_protocol("predict")
        stacks = _stacks(batch["image"], batch.get("size"), protocol)
        return [mask for images in stacks for mask in segment(self.eval_model, images, protocol).prediction]

    def _end_evaluation(self, stage: str) -> None:
        """Logs the split's scores, keeps them with the per-class table in ``last_eval_report``, resets."""
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        report = metrics.report(self._class_names())
        for key, name in METRIC_NAMES[stage].items():
            value = float("nan") if report[key] is None else report[key]  # None: nothing was labelled
            self.log(name, torch.tensor(value), prog_bar=stage == "val")
        self.last_eval_report = {"stage": stage, "protocol": self.eval_protocol(stage).describe(), **report}
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._end_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._end_evaluation("test")


def _stacks(tensors: Tensor, sizes: Tensor | None, protocol: SegmentationProtocol) -> list[Tensor]:
    """A padded batch ``(B, ..., H, W)`` as the stacks `segment` takes, cropped to their original sizes.

    One stack when every image has one size and the protocol one view (synthetic data, batched
    as in training); else one image per stack, so memory holds one image's views whatever the batch.
    """
    if len(protocol.views) == 1 and (sizes is None or bool((sizes == sizes[0]).all())):
        height, width = tensors.shape[-2:] if sizes is None else sizes[0].tolist()
        return [tensors[..., :height, :width]]
    return [tensor[None] for tensor in crop_to_sizes(tensors, sizes)]
