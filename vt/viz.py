"""Plotting helpers shared by the notebooks (matplotlib; nothing here is needed for training)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_rgb(image: Tensor) -> np.ndarray:
    """A normalised ``(3, H, W)`` image -> ``(H, W, 3)`` floats in [0, 1] for ``imshow``."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def attention_maps(attn: Tensor, map_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Per-token spatial attention ``(HW, L)`` on a ``map_size`` grid -> ``(L, H, W)`` at ``size``."""
    maps = attn.detach().cpu().T.reshape(-1, 1, *map_size)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def plot_token_attention(
    image: Tensor, attn: Tensor, map_size: tuple[int, int], title: str = "", cols: int = 8
) -> Figure:
    """The image, then one panel per token with its spatial attention overlaid.

    Args:
        image: ``(3, H, W)`` normalised image.
        attn: ``(HW, L)`` tokenizer attention ``A`` of that image (columns sum to 1).
        map_size: ``(h, w)`` of the feature map the attention lives on.
    """
    rgb = to_rgb(image)
    maps = attention_maps(attn, map_size, rgb.shape[:2])
    n = maps.shape[0] + 1
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(rgb)
    axes.flat[0].set_title("image", fontsize=8)
    for i, m in enumerate(maps, start=1):
        axes.flat[i].imshow(rgb)
        axes.flat[i].imshow(m, cmap="jet", alpha=0.5)
        axes.flat[i].set_title(f"token {i - 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_segmentation(
    image: Tensor, prediction: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Figure:
    """Image, ground truth and prediction side by side (``(H, W)`` integer masks)."""
    cmap = plt.get_cmap("tab20", max(num_classes, 2))
    tgt = target.detach().cpu().numpy().astype(float)
    tgt[tgt == ignore_index] = np.nan
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.7))
    panels = [(to_rgb(image), None, "image"), (tgt, cmap, "ground truth"),
              (prediction.detach().cpu().numpy(), cmap, "prediction")]
    for ax, (data, cm, name) in zip(axes, panels):
        ax.imshow(data, cmap=cm, vmin=0, vmax=num_classes - 1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_accuracy_vs(
    xs: Sequence[float], accuracies: Sequence[float], labels: Sequence[str], xlabel: str,
    baseline: tuple[float, float, str] | None = None, log_x: bool = False,
) -> Figure:
    """Accuracy against a cost axis (tokens or FLOPs), optionally with a baseline point."""
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot(xs, accuracies, "o-", label="VT-ResNet")
    for x, y, t in zip(xs, accuracies, labels):
        ax.annotate(t, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if baseline is not None:
        ax.scatter([baseline[0]], [baseline[1]], marker="s", color="k", label=baseline[2], zorder=3)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("val top-1 accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
