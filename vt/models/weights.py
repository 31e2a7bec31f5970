"""Loading checkpoints into a model, with a report of what loaded.

A checkpoint is a local file, or a library's published weights for a named architecture:
``"torchvision"`` (its ``DEFAULT`` weights, ``"torchvision:IMAGENET1K_V1"`` for others) or
``"timm"`` (``"timm:a1_in1k"`` for a pretrained tag). Those two go through the library's own
weights API, which reads its local cache first and downloads only what is missing; nothing else
here downloads. Two file formats are understood:

* **torchvision**: a plain state dict as saved by ``torch.save(model.state_dict())`` (the files
  behind ``torchvision.models.ResNet50_Weights``), or the ``{"model": state_dict, ...}`` that
  torchvision's reference training scripts write.
* **nested**: a checkpoint that holds the weights of several modules, each under its own prefix,
  ``{"state_dict": {...}}`` as Lightning writes it (a ``vt`` classifier's, see :mod:`vt.checkpoint`).
  The caller names the model's prefix, or the top-level module that holds most of the model's keys
  is taken; the prefix is stripped and every other entry (an EMA copy, a distillation teacher) is
  reported as unexpected instead of being loaded.

Keys whose shapes disagree (a ResNet-18 checkpoint into a ResNet-50) are reported, not loaded.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    """Which keys of a checkpoint went where.

    loaded: model keys filled from the checkpoint.
    missing: model keys not loaded (absent or mismatched; they keep their initialisation).
    unexpected: checkpoint keys the model lacks (after stripping the prefix), and those outside it.
    mismatched: keys in both whose shapes differ, as ``"key: checkpoint (..) vs model (..)"``.
    """

    path: str
    format: str
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]

    def summary(self) -> str:
        """One line per kind of key; lists are shortened to their first few entries."""

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")

        lines = [f"{self.path} ({self.format}): loaded {len(self.loaded)} keys"]
        for kind in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, kind)
            if keys:
                lines.append(f"  {kind} {len(keys)}: {few(keys)}")
        return "\n".join(lines)


LIBRARIES = ("torchvision", "timm")  # weight sources named instead of a file, see library_state_dict


def library_state_dict(source: str, arch: str) -> dict[str, Tensor]:
    """The published weights of ``arch`` (``"resnet50"``) named by ``source``, through the library's API.

    ``source`` is ``"torchvision"`` or ``"torchvision:<WEIGHTS>"`` (a member of
    ``torchvision.models.get_model_weights(arch)``, default ``DEFAULT``), or ``"timm"`` or
    ``"timm:<tag>"`` (timm's ``arch.tag``, default its default tag). Each library reads its cache
    and downloads only a file it lacks. Raises a one-line ``ValueError`` for an unknown name.
    """
    library, _, tag = source.partition(":")
    if library == "torchvision":
        from torchvision.models import get_model_weights

        try:
            members = get_model_weights(arch)
        except ValueError as e:
            raise ValueError(f"torchvision has no weights for {arch!r} ({e})") from e
        if tag and tag not in members.__members__:
            raise ValueError(f"torchvision has no {arch} weights {tag!r}; "
                             f"choose one of: {', '.join(members.__members__)}")
        return members[tag or "DEFAULT"].get_state_dict(progress=True)
    if library == "timm":
        try:
            import timm
        except ImportError as e:
            raise ValueError(f"{source!r} needs timm: pip install 'vt[timm]'") from e
        name = f"{arch}.{tag}" if tag else arch
        if not timm.is_model_pretrained(name):
            raise ValueError(f"timm has no pretrained weights {name!r}; "
                             f"list them with timm.list_pretrained('{arch}.*')")
        return timm.create_model(name, pretrained=True).state_dict()
    raise ValueError(f"unknown weight library {library!r}; use one of {', '.join(LIBRARIES)} or a file")


def is_library(source: str | Path) -> bool:
    """Whether ``source`` names a library's weights (``"torchvision[:WEIGHTS]"``, ``"timm[:tag]"``), not a file."""
    return isinstance(source, str) and source.partition(":")[0] in LIBRARIES


def read_state_dict(path: str | Path, arch: str | None = None) -> tuple[dict[str, Tensor], str]:
    """The model state dict stored in ``path`` and the format it was found in.

    Returns ``(state_dict, format)`` with format ``"lightning"`` (the nested state dict, prefixes
    kept) or ``"torchvision"``; a library source (:func:`is_library`) gives that library's weights
    for ``arch`` with the library's name as format. Raises ``FileNotFoundError``/``ValueError`` with
    the expected layouts.
    """
    if is_library(path):
        if arch is None:
            raise ValueError(f"{path!r} names a library's weights; it needs the architecture (e.g. 'resnet50')")
        return library_state_dict(str(path), arch), str(path).partition(":")[0]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (weights are never downloaded; "
                                f"give a local torchvision .pth or a vt classifier .ckpt)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} holds objects other than tensors and plain containers; if you trust it, "
                         f"re-save its state dict alone with torch.save(...) ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], "lightning"
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"], "torchvision"
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return obj, "torchvision"
    raise ValueError(f"{path} is neither a state dict, a {{'model': state_dict}} nor a Lightning "
                     f"checkpoint with a 'state_dict' entry")


def load_weights(
    model: nn.Module, path: str | Path, prefix: str | None = None, arch: str | None = None
) -> LoadReport:
    """Load the checkpoint at ``path`` into ``model`` non-strictly and report every key.

    ``prefix`` names where the model's entries sit in a nested checkpoint (its writer knows);
    without it, the model is the checkpoint's top-level module holding most of the model's keys.
    A torchvision file, or a library's weights for ``arch`` (see :func:`read_state_dict`), is the
    model's alone.
    """
    state, fmt = read_state_dict(path, arch)
    if fmt != "lightning":
        prefix = ""
    elif prefix is None:
        prefix = _module_prefix(state, model.state_dict())
    return load_state_dict(model, state, prefix, path=str(path), format=fmt)


def load_state_dict(
    model: nn.Module, state: dict[str, Tensor], prefix: str = "", *, path: str = "", format: str = "state dict"
) -> LoadReport:
    """Load the entries of ``state`` under ``prefix`` (stripped) into ``model`` non-strictly.

    Entries outside ``prefix`` are reported unexpected; ``path`` and ``format`` only label the
    report. The summary is logged (a warning if any model key stayed unloaded).
    """
    unexpected = [k for k in state if not k.startswith(prefix)]
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = model.state_dict()
    unexpected += [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(usable, strict=False)
    report = LoadReport(
        path=path,
        format=format,
        loaded=[k for k in own if k in usable],
        missing=[k for k in own if k not in usable],
        unexpected=unexpected,
        mismatched=mismatched,
    )
    (log.warning if report.missing else log.info)("loaded weights from %s", report.summary())
    return report


def _module_prefix(state: dict[str, Tensor], own: dict[str, Tensor]) -> str:
    """``"<name>."`` of the top-level module of nested ``state`` whose entries are most often ``own``'s keys."""
    prefixes = sorted({k.split(".", 1)[0] + "." for k in state if "." in k})
    return max(prefixes, key=lambda p: sum(k[len(p):] in own for k in state if k.startswith(p)), default="")
