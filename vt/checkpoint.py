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
`check_checkpoint` tells, in one line, why a file cannot be resumed (or scored) as a given model:
empty, truncated, not a PyTorch file, not a training checkpoint, another model, other shapes.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
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
INIT_ONLY_ARGS = ("backbone_weights", "trunk_weights")


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

    The changes so far:

    * the EMA's ``ema.num_updates`` (updates done) became ``ema.n_averaged`` (models averaged, the
      initial weights included), one more;
    * the recurrent tokenizer's ``center_tokens: bool`` became ``queries`` (``True``: "centred",
      ``False``: "tokens"), and its default became "both", which has a second query LayerNorm
      (``tokenizer.norm_centred``): a VT checkpoint without one was built with "tokens" or
      "centred", and is rebuilt so.
    """
    state = checkpoint["state_dict"]
    if _OLD_EMA_COUNT in state:
        state[EMA_COUNT] = state.pop(_OLD_EMA_COUNT) + 1
    described = checkpoint.get(MODEL_KEY)
    if not described:
        return
    args = described.setdefault("args", {})
    if "center_tokens" in args:
        args["queries"] = "centred" if args.pop("center_tokens") else "tokens"
    recurrent = any(k.endswith("tokenizer.token_to_filter.weight") for k in state)
    if recurrent and "queries" not in args and not any(".tokenizer.norm_centred." in k for k in state):
        args["queries"] = "tokens"


def load_checkpoint_file(path: str | Path) -> Any:
    """What ``torch.save`` stored in ``path``, tensors on the CPU (memory-mapped where it can be).

    Only tensors and plain values are unpickled (``weights_only``). Raises ``FileNotFoundError``,
    or a one-line ``ValueError`` naming the file when it is empty, truncated, damaged, not a
    PyTorch file, or holds other objects.
    """
    path = Path(path)
    if path.is_dir():  # a run directory (or its checkpoints/) is the natural first guess
        inside = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        raise FileNotFoundError(f"checkpoint {path} is a directory, not a checkpoint file; pass a .ckpt in it "
                                f"(e.g. {inside / 'last.ckpt'})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes, a save that never finished); "
                         "use another checkpoint (best-*.ckpt, an earlier copy) or train again")
    zipped = zipfile.is_zipfile(path)
    with open(path, "rb") as file:
        head = file.read(16)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch.save's zip nor its older pickle format
        raise ValueError(f"checkpoint {path} is not a PyTorch file (it starts with {head!r}); give a .ckpt "
                         "that a vt run wrote (last.ckpt, best-*.ckpt)")
    try:
        # mmap reads no tensor data until it is used: a check costs little whatever the file's size.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise ValueError(f"checkpoint {path} holds objects other than tensors and plain values, so "
                             "no vt run wrote it; if you trust it, re-save its state dict alone") from None
        problem = err
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, ... for a damaged file
        problem = err
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
    raise ValueError(
        f"checkpoint {path} cannot be read ({type(problem).__name__}{': ' + first.split('. ')[0] if first else ''}): "
        "it is truncated, damaged or not a PyTorch file; use another checkpoint (last.ckpt, best-*.ckpt) "
        "or train again"
    ) from None  # the message says all of it; torch's own is a paragraph


def check_checkpoint(
    path: str | Path, model_name: str | None = None, expected: Mapping[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """The training checkpoint in ``path``, once it is known to fit; else a one-line error.

    Checks, in order: the file can be read (`load_checkpoint_file`), it is a Lightning training
    checkpoint (a ``state_dict``), it was trained as ``model_name`` (when given and the file says),
    and its tensors have the names and shapes of ``expected`` (a task's ``state_dict()``, when given;
    the returned checkpoint is then upgraded to the current format, `upgrade_checkpoint`).
    Raises ``FileNotFoundError`` or ``ValueError``; the message says which flag to change.
    """
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"checkpoint {path} is not a training checkpoint (it has no state_dict); give a "
                         "last.ckpt or best-*.ckpt that a vt run wrote")
    trained = (checkpoint.get(MODEL_KEY) or {}).get("name")
    if model_name and trained and trained != model_name:
        raise ValueError(f"checkpoint {path} is of {trained}, not {model_name}: pass --model.name {trained} "
                         f"to continue it, or leave out --ckpt_path to train {model_name} from the start")
    if expected is not None:
        upgrade_checkpoint(checkpoint)  # compared in the current format, as the task loads it
        _check_shapes(path, checkpoint["state_dict"], expected)
    return checkpoint


def _check_shapes(path: str | Path, saved: Mapping[str, Any], expected: Mapping[str, torch.Tensor]) -> None:
    """One-line ``ValueError`` naming the first tensors that ``saved`` lacks, adds or sizes differently."""
    lines = []
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    differ = [k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)]
    if differ:
        k = differ[0]
        lines.append(f"{len(differ)} tensors differ in shape (e.g. {k}: {tuple(saved[k].shape)} saved, "
                     f"{tuple(expected[k].shape)} now)")
    if missing:
        lines.append(f"it lacks {len(missing)} (e.g. {missing[0]})")
    if extra:
        lines.append(f"it has {len(extra)} this model does not (e.g. {extra[0]})")
    if lines:
        raise ValueError(f"checkpoint {path} does not fit this run's model: {'; '.join(lines)}; resume with "
                         "the options it was trained with (--config <its run>/config.yaml)")


def read_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """The model description and model weights (the EMA ones when present) of a ``vt`` checkpoint.

    Raises ``FileNotFoundError`` or a one-line ``ValueError`` for anything else.
    """
    path = Path(path)
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or MODEL_KEY not in checkpoint:
        raise ValueError(
            f"{path} is not a vt training checkpoint; for a plain state dict pass the model name too"
        )
    upgrade_checkpoint(checkpoint)
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
