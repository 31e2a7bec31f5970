"""LightningModules for classification and segmentation: loss, metrics, recipes, checkpoints.

Models are built by name through `vt.models`; nothing here knows a model's internals.
"""

from vt.tasks.base import NonFiniteError, NonFiniteLossError, NonFiniteStateError, VTTask
from vt.tasks.callbacks import AtomicCheckpointIO, PreemptionCheckpoint
from vt.tasks.classification import ClassificationTask
from vt.tasks.recipes import CLASSIFICATION_RECIPES, SEGMENTATION_RECIPES, Recipe
from vt.tasks.segmentation import SegmentationTask

TASKS: dict[str, type[VTTask]] = {"classification": ClassificationTask, "segmentation": SegmentationTask}

__all__ = [
    "AtomicCheckpointIO",
    "CLASSIFICATION_RECIPES",
    "SEGMENTATION_RECIPES",
    "TASKS",
    "ClassificationTask",
    "NonFiniteError",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "PreemptionCheckpoint",
    "Recipe",
    "SegmentationTask",
    "VTTask",
]
