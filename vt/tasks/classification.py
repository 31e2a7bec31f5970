"""Image classification: VT-ResNets and their ResNet baselines (method §3, §6)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from vt.inference import load_model
from vt.models import VTOptions
from vt.models.registry import non_default
from vt.tasks.base import Batch, VTTask
from vt.tasks.recipes import CLASSIFICATION_RECIPES


class ClassificationTask(VTTask):
    """Cross-entropy (label smoothing per recipe), top-1/top-5 accuracy, optional distillation.

    Batches need ``"image"`` and ``"label"``. Recipes: ``"standard"`` (paper Table 2),
    ``"advanced"`` (Table 8) and ``"synthetic"`` (the quick demo); see :mod:`vt.tasks.recipes`.

    Args (besides those of :class:`~vt.tasks.base.VTTask`):
        name: a registered classifier (``vt_resnet18``, ``resnet34``, ...).
        recipe: ``"standard"``, ``"advanced"`` or ``"synthetic"``.
        vt: the VT-ResNets' VT settings (``--model.vt.num_tokens 32``); a setting changed for a
            model without VT modules is an error.
        teacher: a checkpoint to distil from (the advanced recipe's teacher; off when ``None``):
            a ``vt`` training checkpoint, or a plain state dict with ``teacher_name`` set.
        teacher_name: the registered model a plain state-dict ``teacher`` is loaded into.
        kd_weight: the loss is ``kd_weight * KD + (1 - kd_weight) * CE`` (paper: 0.8).
        kd_temperature: softmax temperature of the distillation term.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, recipe=recipe, settings=non_default(vt), **kwargs)
        # Kept out of the module tree on purpose: the teacher is not trained, not wrapped by DDP,
        # not converted to SyncBatchNorm, not switched to train mode and not saved in checkpoints.
        self._teacher: tuple[nn.Module, ...] = ()
        if teacher is not None:
            if teacher_name is None:
                self._teacher = (load_model(teacher),)
            else:
                self._teacher = (load_model(teacher, teacher_name, num_classes=self.hparams.num_classes),)

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
