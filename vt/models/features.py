"""The uniform way a backbone states its multi-scale features (timm's ``feature_info``)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class FeatureInfo(NamedTuple):
    """One output level of a backbone: its name, channels and stride relative to the input."""

    name: str
    channels: int
    stride: int


def check_input(x: Tensor, min_size: int, model: str) -> None:
    """One-line errors for inputs a backbone cannot take: not ``(B, 3, H, W)``, or too small."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{model} expects images of shape (B, 3, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(
            f"input {h}x{w} is too small for {model}: it needs at least {min_size}x{min_size} "
            f"(resize or pad the images)"
        )
