"""The ``vt`` training checkpoint format: what a task writes into Lightning's checkpoint, and reading it.

A ``vt`` training checkpoint is a Lightning checkpoint (a dict saved with ``torch.save``) in which

* ``state_dict`` holds the task's modules: the model's weights under ``MODEL_PREFIX`` (the task's
  ``model`` attribute) and, when the run kept an exponential moving average of them, the averaged
  weights under ``EMA_PREFIX`` and the number of averaged models under ``EMA_COUNT`` (the task's
  ``ema`` attribute, a `torch.optim.swa_utils.AveragedModel`);
* ``MODEL_KEY`` says how to rebuild the model: its registered ``name``, its builder ``args`` (less
  ``INIT_ONLY_ARGS``) and the ``class_names`` of its outputs when the datamodule names them;
* ``datamodule_hyper_parameters`` (Lightning's) holds the training ``image_size``;
* ``RNG_KEY`` holds PyTorch's random generators, so that a resumed run draws what the
  uninterrupted one would have.

`write_checkpoint` adds the ``vt`` entries, `read_checkpoint` returns the model's description and
weights, and `upgrade_checkpoint` converts a checkpoint of an older ``vt`` to this format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

MODEL_KEY = "vt_model"
RNG_KEY = "rng_states"
MODEL_PREFIX = "model."
EMA_PREFIX = "ema.module."
EMA_COUNT = "ema.n_averaged"
# Before the EMA was an AveragedModel it counted its updates, one fewer than the models it averaged
# (the initial weights are one of them).
_OLD_EMA_COUNT = "ema.num_updates"

# Builder arguments that only initialise weights; a checkpoint's weights replace them anyway, and
# their files need not exist where the model is loaded.
INIT_ONLY_ARGS = ("backbone_weights",)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a ``vt`` training checkpoint says about its model and data.

    name: the registered model; model_args: the builder arguments it was created with, less
    ``INIT_ONLY_ARGS``; class_names: one per output if the datamodule named them; image_size:
    the training resolution; ema: whether the weights are an exponential moving average.
    """

    name: str
    model_args: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    image_size: int | None = None
    ema: bool = False


def _rebuild_args(model_args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model_args.items() if k not in INIT_ONLY_ARGS}


def write_checkpoint(
    checkpoint: dict[str, Any], name: str, model_args: dict[str, Any], class_names: list[str] | None
) -> None:
    """Adds the ``vt`` entries to the Lightning ``checkpoint`` being saved.

    ``name`` and ``model_args`` rebuild the model (`vt.load_model`); ``class_names`` name its
    outputs (``None`` when the datamodule does not). The random state (augmentation, dropout,
    stochastic depth) lets a resumed run continue exactly; only PyTorch's generators are saved,
    as the data pipeline and models draw from nothing else.
    """
    checkpoint[MODEL_KEY] = {"name": name, "args": _rebuild_args(model_args), "class_names": class_names}
    checkpoint[RNG_KEY] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        checkpoint[RNG_KEY]["cuda"] = torch.cuda.get_rng_state_all()


def restore_rng(checkpoint: dict[str, Any]) -> None:
    """Sets PyTorch's generators to the state saved in ``checkpoint``, if it has one."""
    states = checkpoint.get(RNG_KEY)
    if states is None:
        return
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> None:
    """Converts, in place, a checkpoint written by an older ``vt`` to the current format.

    The only change so far: the EMA's ``ema.num_updates`` (updates done) became ``ema.n_averaged``
    (models averaged, the initial weights included), one more.
    """
    state = checkpoint["state_dict"]
    if _OLD_EMA_COUNT in state:
        state[EMA_COUNT] = state.pop(_OLD_EMA_COUNT) + 1


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
    prefix = EMA_PREFIX if ema else MODEL_PREFIX
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    model = checkpoint[MODEL_KEY]
    info = CheckpointInfo(
        name=model["name"],
        model_args=_rebuild_args(model["args"]),
        class_names=model.get("class_names"),
        image_size=checkpoint.get("datamodule_hyper_parameters", {}).get("image_size"),
        ema=ema,
    )
    return info, weights
