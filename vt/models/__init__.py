"""Whole networks in plain PyTorch, built by name through the registry."""

from vt.models import resnet  # noqa: F401  (registers the classifiers)
from vt.models import fpn  # noqa: F401  (registers the segmenters)
from vt.models.features import FeatureInfo
from vt.models.registry import create_model, list_models, model_task, register_model
from vt.models.resnet import PAPER_STAGES, VT_RESNET34_TABLE8, ResNet, VTResNet, VTStage, VTStageConfig

__all__ = [
    "PAPER_STAGES",
    "VT_RESNET34_TABLE8",
    "FeatureInfo",
    "ResNet",
    "VTResNet",
    "VTStage",
    "VTStageConfig",
    "create_model",
    "list_models",
    "model_task",
    "register_model",
]
