"""LightningModules for classification and segmentation: loss, metrics, recipes, checkpoints.

Models are built by name through `vt.models`; nothing here knows a model's internals.
"""

from vt.tasks.base import NonFiniteLossError, VTTask
from vt.tasks.callbacks import PreemptionCheckpoint
from vt.tasks.classification import ClassificationTask
from vt.tasks.recipes import CLASSIFICATION_RECIPES, SEGMENTATION_RECIPES, Recipe
from vt.tasks.segmentation import SegmentationTask

TASKS: dict[str, type[VTTask]] = {"classification": ClassificationTask, "segmentation": SegmentationTask}

__all__ = [
    "CLASSIFICATION_RECIPES",
    "SEGMENTATION_RECIPES",
    "TASKS",
    "ClassificationTask",
    "NonFiniteLossError",
    "PreemptionCheckpoint",
    "Recipe",
    "SegmentationTask",
    "VTTask",
]
