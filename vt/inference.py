"""From a checkpoint to a model ready for inference: ``vt.load_model``.

A ``vt`` training checkpoint is a Lightning checkpoint whose task (:mod:`vt.tasks`) added
``MODEL_KEY``: the registered name and builder arguments of its model. The model's weights are
the ``state_dict`` entries under ``model.`` (the task's ``model`` attribute) or, when the run kept
an exponential moving average, under ``ema.module.`` (its ``ema`` attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vt.models import create_model
from vt.models.weights import LIGHTNING_PREFIX, load_weights

EMA_PREFIX = "ema.module."
MODEL_KEY = "vt_model"


# Builder arguments that only initialise weights; a checkpoint's weights replace them anyway, and
# their files need not exist where the model is loaded.
INIT_ONLY_ARGS = ("backbone_weights",)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a ``vt`` training checkpoint says about its model and data.

    name: the registered model; model_args: the builder arguments it was created with;
    class_names: one per output if the datamodule named them; image_size: the training
    resolution; ema: whether the weights are an exponential moving average.
    """

    name: str
    model_args: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    image_size: int | None = None
    ema: bool = False


def read_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """The model description and model weights (the EMA ones when present) of a ``vt`` checkpoint.

    Raises ``FileNotFoundError`` or a one-line ``ValueError`` for anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or MODEL_KEY not in checkpoint:
        raise ValueError(
            f"{path} is not a vt training checkpoint; for a plain state dict pass the model name too"
        )
    state = checkpoint["state_dict"]
    ema = any(k.startswith(EMA_PREFIX) for k in state)
    prefix = EMA_PREFIX if ema else LIGHTNING_PREFIX
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    model = checkpoint[MODEL_KEY]
    info = CheckpointInfo(
        name=model["name"],
        model_args={k: v for k, v in model["args"].items() if k not in INIT_ONLY_ARGS},
        class_names=model.get("class_names"),
        image_size=checkpoint.get("datamodule_hyper_parameters", {}).get("image_size"),
        ema=ema,
    )
    return info, weights


def load_model(
    checkpoint: str | Path, name: str | None = None, device: str | torch.device = "cpu", **overrides: Any
) -> nn.Module:
    """A model in eval mode, on ``device``, with the weights of ``checkpoint``.

    ``checkpoint`` is a ``vt`` training checkpoint (``last.ckpt``, ``best-*.ckpt``): the model is
    rebuilt from its hyper-parameters and gets the averaged weights if the run kept an EMA. Or a
    plain state dict (torchvision's format): then ``name`` and builder ``overrides`` (e.g.
    ``num_classes``) say what to build, and every model weight must be in the file.

    The model's ``class_names`` attribute names its outputs (``model.class_names[logits.argmax()]``)
    when the checkpoint does (`CheckpointInfo.class_names`), and is ``None`` otherwise.
    """
    if name is None:
        if overrides:
            raise ValueError("builder overrides apply to plain state dicts only; pass the model name too")
        info, weights = read_checkpoint(checkpoint)
        model = create_model(info.name, **info.model_args)
        model.load_state_dict(weights)
        class_names = info.class_names
    else:
        model = create_model(name, **overrides)
        report = load_weights(model, checkpoint)
        if report.missing or report.mismatched:
            raise ValueError(f"{checkpoint} does not fit {name}: {report.summary()}")
        class_names = None
    model.class_names = class_names
    return model.to(device).eval().requires_grad_(False)
