"""Whole networks in plain PyTorch, built by name through the registry.

With timm installed, the classifiers are also registered with timm (:mod:`vt.models.timm`).
"""

from importlib.util import find_spec

from vt.models import resnet, segmenter, vt_resnet  # noqa: F401  (register the builders)
from vt.models.features import FeatureInfo
from vt.models.fpn import VTFPNConfig
from vt.models.registry import create_model, list_models, model_task, register_model
from vt.models.resnet import ResNet
from vt.models.segmenter import Segmenter
from vt.models.vt_resnet import (
    PAPER_STAGES,
    VT_RESNET34_TABLE8,
    VTOptions,
    VTResNet,
    VTStage,
    VTStageConfig,
    VTStageOutput,
)

__all__ = [
    "PAPER_STAGES",
    "VT_RESNET34_TABLE8",
    "FeatureInfo",
    "ResNet",
    "Segmenter",
    "VTFPNConfig",
    "VTOptions",
    "VTResNet",
    "VTStage",
    "VTStageConfig",
    "VTStageOutput",
    "create_model",
    "list_models",
    "model_task",
    "register_model",
]

if find_spec("timm") is not None:
    from vt.models import timm as _timm  # noqa: F401  (registers the classifiers with timm)
