"""Plot helpers draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from vt.viz import attention_maps, plot_accuracy_vs, plot_segmentation, plot_token_attention, to_rgb  # noqa: E402


def test_to_rgb_inverts_imagenet_normalisation() -> None:
    rgb = to_rgb(torch.zeros(3, 4, 5))
    assert rgb.shape == (4, 5, 3)
    assert abs(rgb[0, 0, 0] - 0.485) < 1e-6


def test_attention_maps_keep_the_hottest_pixel() -> None:
    attn = torch.zeros(16, 2)
    attn[5, 0] = attn[10, 1] = 1  # (1, 1) and (2, 2) on a 4x4 grid
    maps = attention_maps(attn, (4, 4), (4, 4))
    assert maps.shape == (2, 4, 4)
    assert maps[0].argmax() == 5 and maps[1].argmax() == 10


def test_plots_have_one_panel_per_item() -> None:
    fig = plot_token_attention(torch.randn(3, 32, 32), torch.softmax(torch.randn(4, 6), 0), (2, 2))
    assert sum(ax.has_data() for ax in fig.axes) == 7
    fig = plot_segmentation(torch.randn(3, 8, 8), torch.zeros(8, 8, dtype=torch.long),
                            torch.full((8, 8), 255), num_classes=3)
    assert len(fig.axes) == 3
    fig = plot_accuracy_vs([2, 4, 8], [0.5, 0.6, 0.7], ["2", "4", "8"], "tokens", (16, 0.65, "ResNet"))
    assert fig.axes[0].get_xlabel() == "tokens"
