"""The VT blocks compute the same in NCHW and channels-last, and keep the caller's memory format.

The two formats take different kernels (spec-neutral performance choices in ``vt.nn.attention``):
channels-last tokenizers use the fused CPU attention, NCHW projectors a key-major explicit path.
"""

from __future__ import annotations

import pytest
import torch

from vt.nn import VisualTransformer

B, C, H, W, L, CT = 2, 32, 5, 7, 4, 32


def _pair(**options: object) -> tuple[VisualTransformer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    vt = VisualTransformer(C, L, CT, **options).eval()
    return vt, torch.randn(B, C, H, W), torch.randn(B, L, CT)


@pytest.mark.parametrize("tokenizer", ["filter", "recurrent"])
def test_channels_last_and_nchw_agree(tokenizer: str) -> None:
    vt, x, tokens = _pair(tokenizer=tokenizer, out_channels=2 * C, projector_groups=4)
    with torch.no_grad():
        nchw = vt(x, tokens)
        cl = vt.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), tokens)
    torch.testing.assert_close(cl.features, nchw.features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cl.tokens, nchw.tokens, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
def test_projected_map_keeps_the_input_memory_format(memory_format: torch.memory_format) -> None:
    vt, x, tokens = _pair(heads=2, projector_heads=2)
    with torch.no_grad():
        out = vt.to(memory_format=memory_format)(x.contiguous(memory_format=memory_format), tokens)
    assert out.features.is_contiguous(memory_format=memory_format)
