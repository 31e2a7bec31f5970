"""``vt``'s classifiers in timm: ``timm.create_model("vt_resnet18", num_classes=10)``.

Importing :mod:`vt.models` (so also ``import vt``) imports this module when timm is installed
(``pip install "vt[timm]"``), and this module registers every ``vt`` classifier with timm's own
``register_model``:

* the VT-ResNets under their ``vt`` names (``vt_resnet18`` .. ``vt_resnet101``; timm has no
  ``vt_*`` model);
* the ResNet baselines as ``vt_baseline_resnet18`` .. (timm's ``resnet18`` is timm's own ResNet).

Every builder option passes through (``timm.create_model("vt_resnet34", num_tokens=32,
trunk_weights="torchvision")``). ``features_only=True`` gives C2..C5, ``out_indices`` 0..3
(timm's own ResNets count their stem as index 0, so their C2..C5 are 1..4), with timm's
``feature_info`` (``channels()``, ``reduction()``). Each model carries a ``pretrained_cfg``:
``vt``'s evaluation transform (ImageNet mean/std, 224 crop at 0.875, bilinear), ``conv1``, ``fc``.
There are no published ``vt`` weights: ``pretrained=True`` needs a weight source in
``pretrained_cfg_overlay`` (``dict(file=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import FeatureInfo, build_model_with_cfg, register_model
from torch import Tensor, nn

from vt.models.registry import builder_signature, create_model, list_models
from vt.models.resnet import LEVELS

BASELINE_PREFIX = "vt_baseline_"
_WEIGHT_SOURCES = ("file", "url", "hf_hub_id", "state_dict")  # pretrained_cfg keys that locate weights


def timm_name(name: str) -> str:
    """The name timm knows the ``vt`` classifier ``name`` by."""
    return name if name.startswith("vt_") else BASELINE_PREFIX + name


class LevelFeatures(nn.Module):
    """timm's ``features_only`` model: ``x: (B, 3, H, W)`` -> ``[C_i (B, C, H/s, W/s) for i in out_indices]``.

    ``out_indices`` 0..3 are C2..C5 (negative ones count from C5; an int ``n`` is the last ``n``).
    Modules registered after the deepest requested level (the head, later stages) are removed, as
    timm's feature wrappers do, so every parameter left is used (DDP needs no unused-parameter search).
    """

    def __init__(self, model: nn.Module, out_indices: int | tuple[int, ...] = (0, 1, 2, 3)) -> None:
        super().__init__()
        count = len(LEVELS)
        picked = tuple(range(-out_indices, 0)) if isinstance(out_indices, int) else tuple(out_indices)
        if not picked or any(not -count <= i < count for i in picked):
            raise ValueError(f"out_indices {out_indices!r} must pick among C2..C5: indices 0..3 (or -4..-1)")
        self.feature_info = FeatureInfo([dict(f) for f in model.feature_info], picked)
        indices = [i % count for i in picked]
        self.levels = [LEVELS[i] for i in indices]
        self.last = LEVELS[max(indices)]
        children = list(model._modules)
        for name in children[children.index(model.feature_info[max(indices)]["module"]) + 1:]:
            setattr(model, name, None)
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x: (B, 3, H, W)`` -> the requested levels, in ``out_indices`` order."""
        levels = self.model.forward_levels(x, self.last)
        return [levels[name] for name in self.levels]


def pretrained_cfg(name: str) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of the ``vt`` classifier ``name``: how ``vt`` evaluates it, no weights."""
    min_size = 16 if name.startswith("vt_") else 32  # the stride of the map the last stage works on
    return dict(
        url="", num_classes=1000, input_size=(3, 224, 224), min_input_size=(3, min_size, min_size),
        crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv="conv1", classifier="fc", description=f"{name} from vt: Visual Transformers (Wu et al. 2020)",
    )


def _model_cls(name: str) -> Callable[..., nn.Module]:
    """What timm's ``build_model_with_cfg`` instantiates: the ``vt`` builder, plus timm's own arguments."""

    def build(in_chans: int = 3, device: Any = None, dtype: Any = None, **kwargs: Any) -> nn.Module:
        if in_chans != 3:
            raise ValueError(f"{name} takes RGB images (in_chans=3), got in_chans={in_chans}")
        model = create_model(name, **kwargs)
        return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model

    return build


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    """timm's entry point for the ``vt`` classifier ``name``, named as :func:`timm_name` says."""

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        overlay = kwargs.get("pretrained_cfg_overlay") or {}
        if pretrained and not any(overlay.get(key) for key in _WEIGHT_SOURCES):
            raise ValueError(
                f"there are no published {name} weights; use pretrained=False (trunk_weights='torchvision' "
                f"starts the ResNet trunk from ImageNet) or pretrained_cfg_overlay=dict(file=PATH)"
            )
        feature_cfg = dict(feature_cls=LevelFeatures, out_indices=tuple(range(len(LEVELS))))
        return build_model_with_cfg(_model_cls(name), timm_name(name), pretrained, feature_cfg=feature_cfg, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name(name)
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"``vt`` {name} for timm; options: {builder_signature(name)}"
    return entrypoint


CLASSIFIERS = list_models("classification")
# timm's register_model reads the pretrained cfgs from the entry point's module, by model name.
default_cfgs = {timm_name(name): pretrained_cfg(name) for name in CLASSIFIERS}
for _name in CLASSIFIERS:
    globals()[timm_name(_name)] = register_model(_entrypoint(_name))
