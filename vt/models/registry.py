"""A registry of named model builders: ``--backbone vt_resnet34`` is a lookup, not an if-chain.

Builders state only what differs from their family (timm's ``model_args``): ``vt_resnet18(**kwargs)``
is ``_vt_resnet(18, **kwargs)``. What a builder takes is declared when it is registered, so the
registry can list it (`builder_signature`) and check it (`check_options`, the one option check).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


class _Entry(NamedTuple):
    build: Callable[..., nn.Module]
    task: str
    signature: inspect.Signature
    group: str | None  # the name of the builder's option group in errors ("VT stage", "neck")
    options: tuple[str, ...]  # the names in that group


_BUILDERS: dict[str, _Entry] = {}


def config_options(config: Any, exclude: Collection[str] = ()) -> tuple[inspect.Parameter, ...]:
    """The fields of the dataclass instance ``config`` as keyword-only parameters defaulting to its values."""
    return tuple(
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=getattr(config, f.name), annotation=f.type)
        for f in dataclasses.fields(config)
        if f.name not in exclude
    )


def register_model(
    task: str = "classification",
    base: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
    options: Sequence[inspect.Parameter] = (),
    group: str | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator: register a builder under its function name for ``task``.

    A builder that forwards ``**kwargs`` declares what it takes: the parameters of ``base`` (or
    of each function in a sequence of them) after its positional-only ones (what the family's
    builders share, e.g. ``num_classes``), then ``options`` (see :func:`config_options`), this
    model's ``group`` of options with its values. The builder's ``__signature__`` becomes that
    list, so ``help()`` and `builder_signature` show it.
    """
    bases = [] if base is None else list(base) if isinstance(base, Sequence) else [base]

    def wrap(fn: Builder) -> Builder:
        if fn.__name__ in _BUILDERS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        if bases:
            shared = [
                p for b in bases for p in inspect.signature(b).parameters.values()
                if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_KEYWORD)
            ]
            fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                [*shared, *options], return_annotation=inspect.signature(fn).return_annotation
            )
        names = tuple(p.name for p in options)
        _BUILDERS[fn.__name__] = _Entry(fn, task, inspect.signature(fn), group, names)
        return fn

    return wrap


def list_models(task: str | None = None) -> list[str]:
    """Registered names, sorted; only those of ``task`` ("classification", "segmentation") if given."""
    return sorted(n for n, e in _BUILDERS.items() if task is None or e.task == task)


def _entry(name: str) -> _Entry:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _BUILDERS[name]


def model_task(name: str) -> str:
    """The task a registered model is built for."""
    return _entry(name).task


def builder_signature(name: str) -> inspect.Signature:
    """What a registered builder takes; its defaults are the paper's configuration of that model."""
    return _entry(name).signature


def check_options(
    model: str, given: Iterable[str], takes: Sequence[str], group: str | None = None, options: Collection[str] = ()
) -> None:
    """The one option check: a one-line ``ValueError`` for each argument in ``given`` not in ``takes``.

    The message lists what ``model`` takes, or, for a builder with a ``group`` of options (the
    VT stage's, the neck's), those ``options``: the place a misspelt option would be.
    """
    unknown = [k for k in given if k not in takes]
    if not unknown:
        return
    if group is None:
        raise ValueError(f"model {model!r} does not take {', '.join(map(repr, unknown))}; it takes: {', '.join(takes)}")
    raise ValueError(f"{model} does not take {', '.join(sorted(unknown))}; "
                     f"{group} options: {', '.join(sorted(options)) or 'none'}")


def check_positive(options: Any, names: Iterable[str]) -> None:
    """A one-line ``ValueError`` unless each of ``names`` in the dataclass ``options`` is a positive int or None.

    ``None`` is left to fields whose ``None`` means "derived from another" (``qk_channels``).
    """
    for name in names:
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def create_model(name: str, **overrides: object) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` replace the builder's defaults.

    Raises one-line ``ValueError`` for an unknown name (listing the valid ones), an argument the
    builder does not take (see :func:`check_options`) or ``num_classes`` below 1. The builders'
    option dataclasses check their own values.
    """
    entry = _entry(name)
    check_options(name, overrides, list(entry.signature.parameters), entry.group, entry.options)
    num_classes = overrides.get("num_classes", 1)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return entry.build(**overrides)


def non_default(config: Any) -> dict[str, Any]:
    """The fields of the dataclass instance ``config`` whose values differ from the field defaults.

    What a typed settings group (``--model.vt``) adds to a builder's arguments: the builder's own
    defaults stand for the rest.
    """
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.default is dataclasses.MISSING or getattr(config, f.name) != f.default
    }
