"""Plot helpers draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from vt.viz import (  # noqa: E402
    attention_maps,
    plot_accuracy_vs,
    plot_attention_rows,
    plot_segmentation,
    plot_token_ablation,
    plot_token_attention,
    plot_token_relations,
    to_rgb,
)


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


def test_token_ablation_plots_accuracy_against_tokens_and_flops() -> None:
    fig = plot_token_ablation([2, 4, 8], [30e6, 31e6, 32e6], [0.5, 0.6, 0.7], (37e6, 0.65, "ResNet-18"),
                              spread=[(0.4, 0.6), (0.5, 0.7), (0.6, 0.8)])
    by_tokens, by_flops = fig.axes
    assert by_tokens.get_xscale() == "log"
    assert by_flops.get_xlabel().startswith("MFLOPs")
    assert "ResNet-18" in [t.get_text() for t in by_tokens.get_legend().get_texts()]


def test_attention_rows_give_each_row_its_own_grid_and_tokens() -> None:
    image = torch.randn(3, 16, 16)
    rows = [("P2", image, torch.softmax(torch.randn(16, 3), 0), (4, 4)),
            ("P3", image, torch.softmax(torch.randn(4, 2), 0), (2, 2))]
    fig = plot_attention_rows(rows)
    assert len(fig.axes) == 2 * 4
    assert sum(ax.has_data() for ax in fig.axes) == (1 + 3) + (1 + 2)


def test_token_relations_label_each_group() -> None:
    fig = plot_token_relations(torch.softmax(torch.randn(8, 8), -1), ["P2", "P3"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["P2", "P3"]
