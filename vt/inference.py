"""From a checkpoint to a model ready for inference: ``vt.load_model``.

A ``vt`` training checkpoint (its format: :mod:`vt.checkpoint`) rebuilds its model by name and
gives it the averaged weights when the run kept an exponential moving average; a plain state dict
needs the model's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vt.checkpoint import MODEL_KEY, MODEL_PREFIX, CheckpointInfo, load_checkpoint_file, read_checkpoint
from vt.models import create_model
from vt.models.weights import load_weights

__all__ = ["CheckpointInfo", "load_model", "read_checkpoint"]


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

    Raises ``FileNotFoundError``, or a one-line ``ValueError`` for a file that is empty, damaged,
    not a PyTorch file, or whose weights do not fit the model.
    """
    if name is None:
        if overrides:
            raise ValueError("builder overrides apply to plain state dicts only; pass the model name too")
        info, weights = read_checkpoint(checkpoint)
        model = create_model(info.name, **info.model_args)
        model.load_state_dict(weights)
        class_names = info.class_names
    else:
        if Path(checkpoint).is_file():
            saved = load_checkpoint_file(checkpoint)  # a damaged file: one line, not torch's paragraph
            trained = (saved.get(MODEL_KEY) or {}).get("name") if isinstance(saved, dict) else None
            if trained and trained != name:
                raise ValueError(f"{checkpoint} is a checkpoint of {trained}, not {name}; "
                                 "leave out the name to rebuild the model it holds")
        model = create_model(name, **overrides)
        report = load_weights(model, checkpoint, prefix=MODEL_PREFIX)
        if report.missing or report.mismatched:
            raise ValueError(f"{checkpoint} does not fit {name}: " + "; ".join(
                f"{len(keys)} {kind} (e.g. {keys[0]})"
                for kind, keys in (("weights missing", report.missing), ("of another shape", report.mismatched))
                if keys
            ))
        class_names = None
    model.class_names = class_names
    return model.to(device).eval().requires_grad_(False)
