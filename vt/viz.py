"""Plotting helpers shared by the notebooks (matplotlib; nothing here is needed for training)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from vt.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def to_rgb(image: Tensor) -> np.ndarray:
    """A normalised ``(3, H, W)`` image -> ``(H, W, 3)`` floats in [0, 1] for ``imshow``."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def attention_maps(attn: Tensor, map_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Per-token spatial attention ``(HW, L)`` on a ``map_size`` grid -> ``(L, H, W)`` at ``size``."""
    maps = attn.detach().cpu().T.reshape(-1, 1, *map_size)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def _overlay(ax: plt.Axes, rgb: np.ndarray, heat: np.ndarray, title: str, vmax: float | None = None) -> None:
    """One panel: the image with a heat map over it (colour scale 0..``vmax``, else the map's own)."""
    ax.imshow(rgb)
    ax.imshow(heat, cmap="jet", alpha=0.5, vmin=None if vmax is None else 0.0, vmax=vmax)
    ax.set_title(title, fontsize=8)


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
        _overlay(axes.flat[i], rgb, m, f"token {i - 1}")
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
    baseline: tuple[float, float, str] | None = None, log_x: bool = False, ax: plt.Axes | None = None,
    spread: Sequence[tuple[float, float]] | None = None,
) -> Figure:
    """Accuracy against a cost axis (tokens or FLOPs), optionally with a baseline point.

    Draws into ``ax`` when given (one panel of a larger figure), else into a new figure.
    ``spread`` gives each point's ``(low, high)`` accuracy (e.g. over seeds), drawn as error bars.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    fig = ax.figure
    if spread is not None:
        below = [a - low for a, (low, _) in zip(accuracies, spread)]
        above = [high - a for a, (_, high) in zip(accuracies, spread)]
        ax.errorbar(xs, accuracies, yerr=[below, above], fmt="none", ecolor="C0", alpha=0.6, capsize=3)
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


def plot_token_ablation(
    num_tokens: Sequence[int], flops: Sequence[float], accuracies: Sequence[float],
    baseline: tuple[float, float, str] | None = None, title: str = "",
    spread: Sequence[tuple[float, float]] | None = None,
) -> Figure:
    """The token-count ablation: accuracy against L (log scale) and against FLOPs, side by side.

    Args:
        num_tokens, flops, accuracies: one entry per VT model; ``flops`` per image, in FLOPs
            (shown in MFLOPs or GFLOPs, whichever reads better).
        baseline: ``(flops, accuracy, label)`` of a model without tokens (e.g. the ResNet), drawn
            as a point on the FLOPs panel and a dashed line on the tokens panel.
        spread: ``(low, high)`` accuracy of each VT model (e.g. over seeds), drawn as error bars.
    """
    scale, unit = (1e9, "GFLOPs") if max(flops) >= 1e9 else (1e6, "MFLOPs")
    fig, (by_tokens, by_flops) = plt.subplots(1, 2, figsize=(8.4, 3.3))
    labels = [f"L={n}" for n in num_tokens]
    plot_accuracy_vs(num_tokens, accuracies, labels, "tokens L", log_x=True, ax=by_tokens, spread=spread)
    by_tokens.set_xticks(list(num_tokens), [str(n) for n in num_tokens])
    by_tokens.minorticks_off()
    scaled_baseline = None if baseline is None else (baseline[0] / scale, baseline[1], baseline[2])
    plot_accuracy_vs([f / scale for f in flops], accuracies, labels, f"{unit} per image (fvcore)",
                     scaled_baseline, ax=by_flops, spread=spread)
    if baseline is not None:
        by_tokens.axhline(baseline[1], color="k", linestyle="--", linewidth=1, label=baseline[2])
        by_tokens.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_attention_rows(
    rows: Sequence[tuple[str, Tensor, Tensor, tuple[int, int]]], panel: float = 1.1
) -> Figure:
    """One row per (image, attention) pair: the image, then each token's map overlaid.

    Rows may differ in map size and token count (VT modules of a stack, levels of a pyramid). The
    maps of a row share one colour scale, from 0 to the row's largest attention, so a token that
    spreads its attention looks flat and one that focuses looks hot.

    Args:
        rows: ``(label, image, attn, map_size)``: ``image (3, H, W)`` normalised, ``attn (hw, L)``
            a tokenizer's ``A`` for that image on a ``map_size = (h, w)`` grid (columns sum to 1).
        panel: side of one panel in inches.
    """
    cols = 1 + max(attn.shape[1] for _, _, attn, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(panel * cols, panel * 1.1 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (label, image, attn, map_size) in enumerate(rows):
        rgb = to_rgb(image)
        axes[r, 0].imshow(rgb)
        axes[r, 0].set_title(label, fontsize=8)
        maps = attention_maps(attn, map_size, rgb.shape[:2])
        for i, m in enumerate(maps, start=1):
            _overlay(axes[r, i], rgb, m, f"token {i - 1}", vmax=float(maps.max()))
    fig.tight_layout()
    return fig


def plot_token_relations(attn: Tensor, groups: Sequence[str], title: str = "") -> Figure:
    """A transformer's token-to-token attention ``(L, L)`` (rows: queries), split into groups.

    ``groups`` names equal consecutive blocks of tokens (e.g. the pyramid levels whose tokens one
    VT-FPN transformer relates); the blocks are outlined and labelled.
    """
    w = attn.detach().cpu().numpy()
    size = w.shape[0] // len(groups)
    fig, ax = plt.subplots(figsize=(4.0, 3.6))
    image = ax.imshow(w, cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = [size * (g + 0.5) - 0.5 for g in range(len(groups))]
    ax.set_xticks(ticks, groups, fontsize=8)
    ax.set_yticks(ticks, groups, fontsize=8)
    for edge in range(1, len(groups)):
        ax.axhline(edge * size - 0.5, color="w", linewidth=0.8)
        ax.axvline(edge * size - 0.5, color="w", linewidth=0.8)
    ax.set_xlabel("key token", fontsize=8)
    ax.set_ylabel("query token", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
