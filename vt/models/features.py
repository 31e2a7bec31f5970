"""The uniform way a backbone states its multi-scale features (timm's ``feature_info``)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class FeatureInfo(NamedTuple):
    """One output level of a backbone: its name, channels and stride relative to the input."""

    name: str
    channels: int
    stride: int


def check_input(x: Tensor, min_size: int, model: str, dtype: torch.dtype | None = None) -> None:
    """One-line errors for inputs a model cannot take: not ``(B, 3, H, W)``, too small, or of a dtype
    other than the weights' ``dtype`` (uint8 pixels, float64 arrays; under autocast any float but
    float64 passes, as autocast never casts float64).

    Only shapes and dtypes are looked at, never values, so the check costs nothing and traces away
    under ``torch.compile`` and ``torch.export``. An empty batch (B = 0) passes: every model returns
    an empty output for it.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{model} expects images of shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{model} expects float images normalised with the ImageNet mean and std, got {x.dtype}; "
            "convert with x.float() / 255, then normalise (vt.data.transforms.IMAGENET_MEAN, IMAGENET_STD)"
        )
    # Asked about autocast only on a mismatch: a meta-device input (shape inference) has no autocast.
    if dtype is not None and x.dtype != dtype and (
        x.dtype == torch.float64 or not torch.is_autocast_enabled(x.device.type)
    ):
        # Refused rather than converted: a silent cast would hide a float64 pipeline's cost and
        # give the caller outputs of a dtype they did not ask for.
        raise ValueError(
            f"{model} has {dtype} weights but got {x.dtype} images; pass x.to({dtype}), "
            f"or convert the model with model.to({x.dtype})"
        )
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(
            f"input {h}x{w} is too small for {model}: it needs at least {min_size}x{min_size} "
            f"(resize or pad the images)"
        )
