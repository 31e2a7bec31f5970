"""Image classification: VT-ResNets and their ResNet baselines (method §3, §6)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from vt.inference import load_model
from vt.models import VTOptions
from vt.models.registry import non_default
from vt.tasks.base import Batch, VTTask
from vt.tasks.recipes import CLASSIFICATION_RECIPES


class ClassificationTask(VTTask):
    """Cross-entropy (label smoothing per recipe), top-1/top-5 accuracy, optional distillation.

    Batches need ``"image"`` and ``"label"``. Recipes: ``"standard"`` (paper Table 2),
    ``"advanced"`` (Table 8) and ``"synthetic"`` (the quick demo); see :mod:`vt.tasks.recipes`.

    Its own arguments follow; the rest are those of :class:`~vt.tasks.base.VTTask`.

    Args:
        name: a registered classifier (``vt_resnet18``, ``resnet34``, ...).
        recipe: ``"standard"``, ``"advanced"`` or ``"synthetic"``.
        vt: the VT-ResNets' VT settings (``--model.vt.num_tokens 32``); a setting changed for a
            model without VT modules is an error.
        teacher: a checkpoint to distil from (the advanced recipe's teacher; off when ``None``):
            a ``vt`` training checkpoint, or a plain state dict with ``teacher_name`` set.
        teacher_name: the registered model a plain state-dict ``teacher`` is loaded into.
        kd_weight: the loss is ``kd_weight * KD + (1 - kd_weight) * CE`` (paper: 0.8).
        kd_temperature: softmax temperature of the distillation term.
        trunk_weights: the stem and stages 1-3 (the ResNet trunk) from a ResNet's weights: a
            torchvision or timm state dict file, a ``vt`` checkpoint, or ``"torchvision"`` /
            ``"timm"`` (that library's ImageNet weights, from its cache or downloaded); see
            :mod:`vt.models.trunk`. Only initialises: checkpoints rebuild without it.
        freeze_trunk: keep the trunk fixed (no gradients, frozen BatchNorm statistics).
        trunk_lr_mult: the trunk's learning rate as a multiple of the recipe's (e.g. 0.1 to
            fine-tune a pretrained trunk gently); the schedule scales both alike.
        token_diversity: adds ``token_diversity * overlap`` to the training loss, ``overlap`` the
            mean pairwise cosine of each VT module's tokenizer maps (`vt.nn.map_overlap`,
            logged as ``train/map_overlap``), so that the L tokens keep attending to different
            pixels (method §8). Not in the paper, whose loss asks nothing of the tokens; 0 (the
            default) trains the paper's objective. Only for models with VT modules.
        token_overlap_floor: the term is ``token_diversity * max(overlap - floor, 0)``: maps that
            overlap less than ``floor`` are left to the task loss. 0 (the default) pushes the
            maps apart as far as they go; 0.5 asks only that they stay as distinct as issue 12's
            bar (cosine at most 0.6) with room to spare.
    """

    task = "classification"
    recipes = CLASSIFICATION_RECIPES
    target_key = "label"
    class_names_key = "class_names"
    monitor = "val/acc1"

    def __init__(
        self,
        name: str = "resnet34",
        recipe: str = "standard",
        vt: VTOptions = VTOptions(),
        teacher: str | None = None,
        teacher_name: str | None = None,
        kd_weight: float = 0.8,
        kd_temperature: float = 1.0,
        trunk_weights: str | None = None,
        freeze_trunk: bool = False,
        trunk_lr_mult: float = 1.0,
        token_diversity: float = 0.0,
        token_overlap_floor: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if not (math.isfinite(token_diversity) and token_diversity >= 0):
            raise ValueError(f"token_diversity must be a finite number >= 0, got {token_diversity}")
        if not 0 <= token_overlap_floor < 1:
            raise ValueError(f"token_overlap_floor must be in [0, 1), got {token_overlap_floor}")
        if token_overlap_floor and not token_diversity:
            raise ValueError("--model.token_overlap_floor shapes the token-diversity term, which is off: "
                             "set --model.token_diversity too (e.g. 1)")
        if not trunk_lr_mult > 0:
            raise ValueError(f"trunk_lr_mult must be positive, got {trunk_lr_mult}; "
                             f"to keep the trunk fixed use --model.freeze_trunk true")
        if freeze_trunk and trunk_lr_mult != 1.0:
            raise ValueError("a frozen trunk is not trained: drop --model.trunk_lr_mult or --model.freeze_trunk")
        trunk = {k: v for k, v in (("trunk_weights", trunk_weights), ("freeze_trunk", freeze_trunk)) if v}
        super().__init__(name=name, recipe=recipe, settings={**non_default(vt), **trunk}, **kwargs)
        if token_diversity > 0 and "return_map_overlap" not in inspect.signature(self.model.forward).parameters:
            raise ValueError(f"--model.token_diversity needs a model with visual tokens; {name} has none "
                             f"(choose a vt_ model or drop the option)")
        self.trunk_lr_mult = trunk_lr_mult
        # Kept out of the module tree on purpose: the teacher is not trained, not wrapped by DDP,
        # not converted to SyncBatchNorm, not switched to train mode and not saved in checkpoints.
        self._teacher: tuple[nn.Module, ...] = ()
        if teacher is not None:
            if teacher_name is None:
                self._teacher = (load_model(teacher),)
            else:
                self._teacher = (load_model(teacher, teacher_name, num_classes=self.hparams.num_classes),)

    def setup(self, stage: str) -> None:
        """Adds the ``test`` loop's metrics and the per-class accuracy of ``validate``/``test``.

        Built here rather than in ``__init__``: metrics hold no weights, so checkpoints of every
        ``vt`` version load either way, and a model built only for inference carries none.
        """
        if not hasattr(self, "test_metrics"):
            n = self.hparams.num_classes
            self.test_metrics = self.make_metrics(n).clone(prefix="test/").to(self.device)
            self.class_confusion = MulticlassConfusionMatrix(n).to(self.device)
        self.per_class_metrics: dict[str, dict[str, float]] = {}

    def evaluation_protocol(self) -> str:
        """What ``validate``/``test`` score, in words (written into their results)."""
        data = self.trainer.datamodule if self._trainer else None
        size = getattr(data, "image_size", None)
        if data is not None and getattr(data, "root", None) is not None:  # image files (ImageNet)
            images = (f"shorter side resized to {size}/0.875 = {round(size / 0.875)}, centre crop {size}x{size} "
                      f"(vt.data.transforms.classification_eval)")
        else:
            images = f"generated at {size}x{size}, as in training"
        return f"top-1/top-5 and per-class accuracy over the whole validation split; images {images}"

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        """The validation split, scored as in validation (none of the datasets publishes test labels)."""
        self._evaluate(batch, "test", self.test_metrics)

    def _evaluate(self, batch: Batch, stage: str, metrics: MetricCollection) -> None:
        """Loss, top-1/top-5 (logged as ``<stage>/...``) and per-class accuracy of one batch.

        ``batch["image"]``: ``(B, 3, S, S)`` (ImageNet: shorter side to ``S / 0.875``, centre
        crop ``S``; `vt.data.transforms.classification_eval`), ``batch["label"]``: ``(B,)``.
        """
        logits = self.eval_model(batch["image"])
        target = batch["label"]
        self.log(f"{stage}/loss", F.cross_entropy(logits, target), sync_dist=True)
        metrics.update(logits, target)
        self.log_dict(metrics, prog_bar=True)
        self.class_confusion.update(logits.argmax(dim=1), target)

    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Class probabilities ``(B, num_classes)`` of ``batch["image"]`` ``(B, 3, S, S)`` (`vt.predict`)."""
        return self.eval_model(batch["image"]).float().softmax(dim=1)

    def on_validation_epoch_end(self) -> None:
        self._collect_per_class()

    def on_test_epoch_end(self) -> None:
        self._collect_per_class()

    def _collect_per_class(self) -> None:
        """``per_class_metrics["accuracy"]``: the epoch's accuracy of each class, by class name.

        Classes without a sample in the split are left out (their accuracy is undefined). The
        command line writes these into ``<checkpoint>.<validate|test>.json``.
        """
        confusion = self.class_confusion.compute()  # (C, C) rows: true class; summed over devices
        self.class_confusion.reset()
        seen = confusion.sum(dim=1)
        accuracy = confusion.diagonal() / seen.clamp(min=1)
        names = getattr(self.trainer.datamodule, self.class_names_key, None) if self._trainer else None
        if names is None or len(names) != len(accuracy):
            names = [str(i) for i in range(len(accuracy))]
        self.per_class_metrics = {
            "accuracy": {str(n): float(a) for n, a, k in zip(names, accuracy.tolist(), seen.tolist()) if k > 0}
        }

    def make_metrics(self, num_classes: int) -> MetricCollection:
        return MetricCollection(
            {
                "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            }
        )

    def on_fit_start(self) -> None:
        super().on_fit_start()
        for teacher in self._teacher:
            teacher.to(self.device)

    def training_forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits, and with ``token_diversity`` its weighted map-overlap term (class docstring)."""
        weight = self.hparams.token_diversity
        if not weight:
            return super().training_forward(images)
        logits, overlap = self.model(images, return_map_overlap=True)
        self.log("train/map_overlap", overlap.detach())
        return logits, weight * (overlap - self.hparams.token_overlap_floor).clamp(min=0)

    def training_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """``(1 - w) * CE + w * T^2 * KL(teacher || student)`` at temperature ``T``; CE alone without teacher."""
        ce = super().training_loss(logits, batch)
        if not self._teacher:
            return ce
        with torch.no_grad():
            teacher_logits = self._teacher[0](batch["image"])
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"the teacher outputs {tuple(teacher_logits.shape)} logits, the student {tuple(logits.shape)}; "
                f"distil from a teacher trained on the same classes"
            )
        t = self.hparams.kd_temperature
        kd = F.kl_div(
            F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
            reduction="batchmean", log_target=True,
        ) * t**2
        self.log("train/kd_loss", kd)
        w = self.hparams.kd_weight
        return w * kd + (1 - w) * ce
