"""VT-ResNets and their baselines (method §3): registry, shapes, features, gradients."""

from __future__ import annotations

import pytest
import torch

from vt.models import create_model, list_models
from vt.nn import FilterTokenizer, PoolingTokenizer, RecurrentTokenizer

CLASSIFIERS = ["resnet18", "resnet34", "resnet50", "resnet101",
               "vt_resnet18", "vt_resnet34", "vt_resnet50", "vt_resnet101"]


def test_every_classifier_is_registered() -> None:
    assert set(CLASSIFIERS) <= set(list_models(task="classification"))


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'vt_resnet19'; valid names: .*vt_resnet34") as e:
        create_model("vt_resnet19")
    assert "\n" not in str(e.value)


def test_unknown_override_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="model 'resnet34' does not take 'num_tokens'; it takes: num_classes, dropout"):
        create_model("resnet34", num_tokens=8)
    with pytest.raises(ValueError, match="vt_resnet34 does not take colour"):
        create_model("vt_resnet34", colour="red")


@pytest.mark.parametrize(("name", "options", "message"), [
    ("vt_resnet18", {"num_tokens": 0}, "num_tokens must be a positive integer, got 0"),
    ("vt_resnet18", {"num_tokens": -1}, "num_tokens must be a positive integer, got -1"),
    ("vt_resnet18", {"num_tokens": 2.5}, "num_tokens must be a positive integer, got 2.5"),
    ("vt_resnet18", {"heads": 0}, "heads must be a positive integer, got 0"),
    ("vt_resnet50", {"num_tokens": 4}, "recurrent_tokens must be in 1..num_tokens=4, got 8; set it with"),
    ("vt_resnet18", {"num_classes": -3}, "num_classes must be a positive integer, got -3"),
    ("resnet18", {"num_classes": -3}, "num_classes must be a positive integer, got -3"),
    ("fpn_resnet50", {"num_classes": 0}, "num_classes must be a positive integer, got 0"),
    ("vtfpn_resnet50", {"num_tokens": 0}, "num_tokens must be a positive integer, got 0"),
])
def test_out_of_range_option_is_a_one_line_error_naming_it(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        create_model(name, **options)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_output_shape(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize("size", [(16, 16), (33, 47), (224, 160)])
def test_vt_resnet_takes_any_size_with_a_stage4_pixel(size: tuple[int, int]) -> None:
    model = create_model("vt_resnet18", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3)


def test_too_small_input_names_the_minimum() -> None:
    with pytest.raises(ValueError, match="input 8x8 is too small for vt_resnet18: it needs at least 16x16"):
        create_model("vt_resnet18")(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="at least 32x32"):
        create_model("resnet18")(torch.randn(1, 3, 16, 16))


def test_wrong_channel_count_is_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, H, W\), got \(1, 1, 64, 64\)"):
        create_model("vt_resnet18")(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize("depth,modules", [(18, 2), (34, 3), (50, 3), (101, 3)])
def test_recurrent_tokenizer_from_the_second_module_on(depth: int, modules: int) -> None:
    blocks = create_model(f"vt_resnet{depth}").layer4.blocks
    assert len(blocks) == modules
    assert isinstance(blocks[0].tokenizer, FilterTokenizer)
    assert all(isinstance(b.tokenizer, RecurrentTokenizer) for b in blocks[1:])


def test_ablation_switches_change_the_modules() -> None:
    assert all(isinstance(b.tokenizer, FilterTokenizer)
               for b in create_model("vt_resnet18", tokenizer="filter").layer4.blocks)
    assert isinstance(create_model("vt_resnet18", tokenizer="pooling").layer4.blocks[0].tokenizer,
                      PoolingTokenizer)
    assert all(b.transformer is None for b in create_model("vt_resnet18", relation="none").layer4.blocks)
    assert all(b.projector is None for b in create_model("vt_resnet18", projector=False).layer4.blocks)
    out = create_model("vt_resnet18", num_tokens=32).forward_tokens(torch.randn(1, 3, 32, 32))
    assert out.tokens.shape == (1, 32, 1024)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_levels_match_level_info(name: str) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        feats = model.forward_levels(torch.randn(1, 3, 64, 64))
    assert [f.name for f in model.level_info] == ["c2", "c3", "c4", "c5"]
    for info in model.level_info:
        assert feats[info.name].shape == (1, info.channels, 64 // info.stride, 64 // info.stride)


def test_classifier_gradient_reaches_every_parameter_it_uses() -> None:
    """Only the last projector is idle in classification: it serves ``forward_levels``."""
    model = create_model("vt_resnet18", num_classes=5)
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
    idle = {n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()}
    assert idle and all(n.startswith("layer4.blocks.1.projector.") for n in idle)
    model.zero_grad(set_to_none=True)
    model.forward_levels(torch.randn(2, 3, 32, 32))["c5"].square().mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters()
               if n.startswith("layer4.blocks.1.projector."))


def test_vt_resnet_accepts_a_torchvision_trunk_state_dict() -> None:
    import torchvision

    tv = torchvision.models.resnet18().state_dict()
    trunk = {k: v for k, v in tv.items() if k.split(".")[0] in {"conv1", "bn1", "layer1", "layer2", "layer3"}}
    model = create_model("vt_resnet18")
    result = model.load_state_dict(trunk, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(("layer4.", "head_norm.", "fc.")) for k in result.missing_keys)
    torch.testing.assert_close(model.layer3[1].conv2.weight, trunk["layer3.1.conv2.weight"])


def test_token_attention_is_exposed_for_every_module() -> None:
    out = create_model("vt_resnet34").forward_tokens(torch.randn(1, 3, 32, 32), return_attention=True)
    assert len(out.attention) == 3
    assert "projector" not in out.attention[-1]  # the classifier skips the last projector
    assert out.attention[0]["tokenizer"].shape == (1, 4, 16)


def test_literal_tokenizer_option_builds_eq_4_and_it_collapses_at_init() -> None:
    from vt.analysis import attention_entropy

    x = torch.randn(2, 3, 112, 112)
    entropies = {}
    for literal in (False, True):
        torch.manual_seed(0)
        model = create_model("vt_resnet18", literal_tokenizer=literal).eval()
        tokenizer = model.layer4.blocks[1].tokenizer
        assert (tokenizer.scale == 1.0) == literal
        assert isinstance(tokenizer.norm, torch.nn.Identity) == literal
        with torch.no_grad():
            attention = model.forward_tokens(x, return_attention=True).attention
        entropies[literal] = attention_entropy(attention[1]["tokenizer"]).mean().item()
    # The literal Eq. 4 softmax starts nearly one-hot; ours starts near the filter tokenizer's spread.
    assert entropies[True] < 0.5 * entropies[False], entropies
