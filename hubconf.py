"""torch.hub entry points: every model of ``vt``'s registry, under its registered name.

    torch.hub.load("path/to/vt", "vt_resnet18", source="local", num_classes=10)
    torch.hub.load("owner/vt", "vtfpn_resnet50", num_classes=20)   # from GitHub

Keyword arguments are the builder's options (``torch.hub.help("owner/vt", name)`` lists them, or
``vt.models.registry.builder_signature(name)``). No
weights are published, so nothing is downloaded but this repository; ``trunk_weights``
(classifiers) and ``backbone_weights`` (segmenters) start a ResNet part from local or library weights.
"""

from __future__ import annotations

from inspect import Parameter as _Parameter
from typing import TYPE_CHECKING

# Imported under private names: torch.hub.list offers every public callable here as a model.
from vt.models import create_model as _create_model
from vt.models import list_models as _list_models
from vt.models.registry import builder_signature as _builder_signature

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

dependencies = ["torch", "torchvision"]


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    """``name``'s entry point: ``create_model(name, **options)``, with the builder's signature."""

    def entrypoint(pretrained: bool = False, **options: object) -> nn.Module:
        # torch.hub callers pass pretrained= out of habit (torchvision's entry points take it).
        if pretrained:
            raise ValueError(
                f"there are no published {name} weights; pass pretrained=False (trunk_weights= or "
                "backbone_weights= start its ResNet part from ImageNet weights), or load your own "
                "checkpoint with vt.load_model(path)"
            )
        return _create_model(name, **options)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = f"``vt.models.create_model({name!r}, **options)``; takes {_builder_signature(name)}"
    signature = _builder_signature(name)
    params = list(signature.parameters.values())
    last = len(params) - (bool(params) and params[-1].kind is _Parameter.VAR_KEYWORD)  # before **kwargs
    params.insert(last, _Parameter("pretrained", _Parameter.KEYWORD_ONLY, default=False, annotation=bool))
    entrypoint.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return entrypoint


globals().update({name: _entrypoint(name) for name in _list_models()})
