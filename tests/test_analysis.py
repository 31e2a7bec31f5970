"""The attention analyses of method §5.3."""

from __future__ import annotations

import math

import pytest
import torch

from vt.analysis import (
    attention_entropy,
    foreground_attention_ratio,
    token_mixed_attention,
    uniform_entropy,
    upsample_attention,
)


def test_uniform_attention_has_maximal_entropy() -> None:
    attn = torch.full((2, 196, 16), 1 / 196)
    torch.testing.assert_close(attention_entropy(attn), torch.full((2, 16), math.log(196)))
    assert uniform_entropy(473 * 473) == pytest.approx(12.318, abs=1e-3)  # the paper's reference


def test_one_hot_attention_has_zero_entropy() -> None:
    attn = torch.zeros(1, 10, 3)
    attn[0, [1, 4, 7], [0, 1, 2]] = 1
    torch.testing.assert_close(attention_entropy(attn), torch.zeros(1, 3), atol=1e-6, rtol=0)


def test_foreground_ratio_measures_preference() -> None:
    fg = torch.tensor([[True, True, False, False]])
    attn = torch.tensor([[[0.3], [0.3], [0.2], [0.2]]])
    assert foreground_attention_ratio(attn, fg).item() == pytest.approx(0.5)
    assert foreground_attention_ratio(torch.full((1, 4, 2), 0.25), fg).item() == pytest.approx(0.0)


def test_foreground_ratio_needs_both_kinds_of_pixel() -> None:
    with pytest.raises(ValueError, match="both foreground and background"):
        foreground_attention_ratio(torch.rand(1, 4, 2), torch.ones(1, 4, dtype=torch.bool))


def test_upsampled_attention_still_sums_to_one() -> None:
    attn = torch.softmax(torch.randn(2, 16, 3), dim=1)
    up = upsample_attention(attn, (4, 4), (32, 32))
    assert up.shape == (2, 1024, 3)
    torch.testing.assert_close(up.sum(dim=1), torch.ones(2, 3))


def test_token_mixing_with_identity_attention_is_a_no_op() -> None:
    attn = torch.softmax(torch.randn(2, 16, 4), dim=1)
    eye = torch.eye(4).expand(2, 3, 4, 4)
    torch.testing.assert_close(token_mixed_attention(attn, eye), attn)
    mixed = token_mixed_attention(attn, torch.softmax(torch.randn(2, 4, 4), dim=-1))
    torch.testing.assert_close(mixed.sum(dim=1), torch.ones(2, 4))
