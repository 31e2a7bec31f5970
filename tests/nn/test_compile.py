"""``torch.compile`` takes the VT blocks whole (no graph breaks) and computes what eager computes.

``fullgraph=True`` turns any graph break into an error. The fast tests trace with the
``aot_eager`` backend (Dynamo + AOTAutograd, forward and backward graphs, no code generation);
the slow ones run Inductor, which generates and compiles C++ for the CPU.
"""

from __future__ import annotations

import pytest
import torch

from vt.models import create_model
from vt.nn import VisualTransformer

B, C, H, W, L, CT = 2, 32, 5, 7, 4, 48

MODULES = {
    "filter": dict(tokenizer="filter", out_channels=2 * C, heads=2, projector_heads=2),
    "recurrent-half": dict(tokenizer="recurrent", recurrent_tokens=L // 2, heads=2, projector_groups=4),
    "pooling-no-transformer": dict(tokenizer="pooling", relation="none", value_proj=True),
}


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    """Every test compiles the same ``forward`` code objects: start below the recompile limit."""
    torch._dynamo.reset()


def _module(name: str) -> VisualTransformer:
    torch.manual_seed(0)
    return VisualTransformer(C, L, CT, **MODULES[name])


def _inputs(channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(B, C, H, W)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x, torch.randn(B, L, CT)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", list(MODULES))
def test_compiled_vt_module_matches_eager(name: str, channels_last: bool) -> None:
    vt = _module(name).eval()
    x, tokens = _inputs(channels_last)
    compiled = torch.compile(vt, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        expected, got = vt(x, tokens), compiled(x, tokens)
    torch.testing.assert_close(got.features, expected.features)
    torch.testing.assert_close(got.tokens, expected.tokens)


@pytest.mark.parametrize("name", list(MODULES))
def test_compiled_vt_module_gradients_match_eager(name: str) -> None:
    vt = _module(name).train()
    x, tokens = _inputs()
    compiled = torch.compile(vt, backend="aot_eager", fullgraph=True)
    grads = []
    for module in (vt, compiled):
        vt.zero_grad(set_to_none=True)
        out = module(x, tokens)
        (out.features.square().mean() + out.tokens.square().mean()).backward()
        grads.append({n: p.grad.clone() for n, p in vt.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6, msg=n)


def test_compiled_attention_maps_match_eager() -> None:
    vt = _module("filter").eval()
    x, tokens = _inputs()
    compiled = torch.compile(vt, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        expected, got = vt(x, tokens, return_attention=True), compiled(x, tokens, return_attention=True)
    for part in expected.attention:
        torch.testing.assert_close(got.attention[part], expected.attention[part])


@pytest.mark.slow
def test_inductor_compiled_vt_module_matches_eager() -> None:
    vt = _module("recurrent-half").eval()
    x, tokens = _inputs(channels_last=True)
    compiled = torch.compile(vt, backend="inductor", fullgraph=True)
    with torch.no_grad():
        expected, got = vt(x, tokens), compiled(x, tokens)
    torch.testing.assert_close(got.features, expected.features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.tokens, expected.tokens, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_inductor_compiled_vt_resnet_matches_eager() -> None:
    torch.manual_seed(0)
    model = create_model("vt_resnet18", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, backend="inductor", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
