"""A registry of named model builders: ``--backbone vt_resnet34`` is a lookup, not an if-chain."""

from __future__ import annotations

import inspect
from typing import Callable, TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}


def register_model(task: str = "classification") -> Callable[[Builder], Builder]:
    """Decorator: register a builder under its function name for ``task``."""

    def wrap(fn: Builder) -> Builder:
        if fn.__name__ in _BUILDERS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _BUILDERS[fn.__name__] = fn
        _TASKS[fn.__name__] = task
        return fn

    return wrap


def list_models(task: str | None = None) -> list[str]:
    """Registered names, sorted; only those of ``task`` ("classification", "segmentation") if given."""
    return sorted(n for n in _BUILDERS if task is None or _TASKS[n] == task)


def model_task(name: str) -> str:
    """The task a registered model is built for."""
    _check_name(name)
    return _TASKS[name]


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")


def create_model(name: str, **overrides: object) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` replace the builder's defaults.

    Raises one-line ``ValueError`` for an unknown name (listing the valid ones) or an argument the
    builder does not take (listing those it does).
    """
    _check_name(name)
    builder = _BUILDERS[name]
    params = inspect.signature(builder).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in overrides if k not in params]
    if unknown and not takes_kwargs:
        raise ValueError(
            f"model {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(params)}"
        )
    return builder(**overrides)


def builder_signature(name: str) -> inspect.Signature:
    """The signature of a registered builder (its defaults are the paper's configuration)."""
    _check_name(name)
    return inspect.signature(_BUILDERS[name])
