"""Segmenters (method §4): FPN / VT-FPN necks, the semantic head, the registered builders.

Reduced widths and small inputs keep this fast; the real sizes are counted in test_fpn_flops.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from vt.models import FeatureInfo, create_model, list_models
from vt.models.backbones import resnet_backbone
from vt.models.fpn import FPN, VTFPN, PyramidNeck, SemanticFPNHead
from vt.flops import count, feature_shapes

SEGMENTERS = ["fpn_resnet101", "fpn_resnet50", "vtfpn_resnet101", "vtfpn_resnet50"]
SMALL = dict(out_channels=64, head_channels=64)  # GroupNorm(32) needs 2 channels a group at 1×1
SMALL_VT = dict(SMALL, token_channels=128, qk_channels=32, ffn_channels=32)
LEVELS = [FeatureInfo("c2", 16, 4), FeatureInfo("c3", 24, 8), FeatureInfo("c4", 32, 16), FeatureInfo("c5", 40, 32)]
NECKS: dict[str, type[PyramidNeck]] = {"fpn": FPN, "vtfpn": VTFPN}
NECK_SMALL = {"fpn": {}, "vtfpn": dict(token_channels=64, qk_channels=16, ffn_channels=16, projector_groups=4)}


def small(name: str, **overrides: object) -> nn.Module:
    """A registered segmenter with reduced neck/head widths (the backbone stays full size)."""
    return create_model(name, **(SMALL_VT if name.startswith("vt") else SMALL), **overrides)


def pyramid(batch: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    """Random C2..C5 features of LEVELS for a ``size``×``size`` image."""
    return {f.name: torch.randn(batch, f.channels, size // f.stride, size // f.stride) for f in LEVELS}


@pytest.fixture(scope="module")
def vtfpn50() -> nn.Module:
    return small("vtfpn_resnet50", num_classes=7).eval()


def test_segmenters_are_registered_for_segmentation():
    assert list_models("segmentation") == SEGMENTERS


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (65, 97), (47, 33)])
def test_logits_have_input_size_at_any_size(vtfpn50, size):
    with torch.no_grad():
        assert vtfpn50(torch.randn(1, 3, *size)).shape == (1, 7, *size)


def test_fpn_logits_have_input_size_at_odd_size():
    with torch.no_grad():
        assert small("fpn_resnet50", num_classes=3).eval()(torch.randn(1, 3, 71, 45)).shape == (1, 3, 71, 45)


def test_too_small_input_names_the_minimum(vtfpn50):
    with pytest.raises(ValueError, match=r"vtfpn_resnet50: it needs at least 32x32"):
        vtfpn50(torch.randn(1, 3, 31, 64))


@pytest.mark.parametrize("kind", ["fpn", "vtfpn"])
def test_neck_outputs_match_feature_info(kind):
    neck = NECKS[kind](LEVELS, 48, **NECK_SMALL[kind]).eval()
    out = neck(pyramid(size=96))
    assert [(f.name, f.channels, f.stride) for f in neck.feature_info] == [
        ("p2", 48, 4), ("p3", 48, 8), ("p4", 48, 16), ("p5", 48, 32)]
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        f.name: (2, 48, 96 // f.stride, 96 // f.stride) for f in neck.feature_info}


@pytest.mark.parametrize("kind", ["fpn", "vtfpn"])
def test_neck_constructor_signatures_agree(kind):
    neck = NECKS[kind](in_features=list(reversed(LEVELS)), out_channels=32, **NECK_SMALL[kind])
    assert [f.stride for f in neck.in_features] == [4, 8, 16, 32]


@pytest.mark.parametrize("kind, reaches", [("vtfpn", True), ("fpn", False)])
def test_finest_input_reaches_coarsest_output_only_through_the_cross_level_transformer(kind, reaches):
    # The top-down path runs coarse to fine, so in FPN C2 cannot touch P5; in VT-FPN the tokens of
    # all levels meet in one transformer and P5's projector reads tokens that have seen C2.
    torch.manual_seed(0)
    neck = NECKS[kind](LEVELS, 32, **NECK_SMALL[kind]).eval()
    features = pyramid()
    changed = dict(features, c2=torch.randn_like(features["c2"]))
    with torch.no_grad():
        before, after = neck(features)["p5"], neck(changed)["p5"]
    assert (not torch.allclose(before, after)) == reaches


def test_unknown_neck_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match="does not take groups; neck options: .*projector_groups"):
        create_model("vtfpn_resnet50", groups=4)


def test_pyramid_levels_must_double_in_stride():
    with pytest.raises(ValueError, match="double in stride"):
        FPN([LEVELS[0], LEVELS[2]])


def test_head_rejects_levels_that_cannot_reach_common_stride():
    with pytest.raises(ValueError, match="common_stride=4"):
        SemanticFPNHead([FeatureInfo("p3", 32, 8), FeatureInfo("p5", 32, 32)], num_classes=2)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.endswith("101") else n for n in SEGMENTERS])
def test_every_parameter_gets_a_gradient(name):
    model = small(name, num_classes=4).train()
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.isfinite().all()] == []


def test_stride_in_1x1_moves_the_stride_to_the_first_conv():
    net, _ = resnet_backbone(50, stride_in_1x1=True)
    assert [(s[0].conv1.stride, s[0].conv2.stride) for s in (net.layer2, net.layer3, net.layer4)] == [
        ((2, 2), (1, 1))] * 3


def test_stride_in_1x1_keeps_the_feature_shapes():
    msra, tv = (feature_shapes(resnet_backbone(50, stride_in_1x1=s)[0], 75, 61) for s in (True, False))
    assert msra == tv


def test_stride_in_1x1_needs_bottlenecks():
    with pytest.raises(ValueError, match="stride_in_1x1=False"):
        resnet_backbone(18, stride_in_1x1=True)


def test_frozen_bn_leaves_no_trainable_batchnorm_in_the_backbone():
    model = small("fpn_resnet50", frozen_bn=True)
    kinds = {type(m) for m in model.backbone.modules()}
    assert nn.BatchNorm2d not in kinds and FrozenBatchNorm2d in kinds


def test_sync_batchnorm_conversion_keeps_frozen_backbone_norms():
    # Lightning's --trainer.sync_batchnorm calls this conversion.
    model = nn.SyncBatchNorm.convert_sync_batchnorm(small("vtfpn_resnet50", frozen_bn=True))
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.backbone.modules())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.neck.modules())


def test_vtfpn_tokens_that_compete_for_pixels_cost_the_same_and_change_the_output():
    # --model.neck.softmax_over tokens: every level's filter tokenizer turns its softmax around
    # (method §8); same parameters, same FLOPs, a different function.
    torch.manual_seed(0)
    paper = small("vtfpn_resnet50", num_classes=7).eval()
    torch.manual_seed(0)
    competing = small("vtfpn_resnet50", num_classes=7, softmax_over="tokens").eval()
    competing.load_state_dict(paper.state_dict())
    assert {tok.softmax_over for tok in competing.neck.tokenizers} == {"tokens"}
    x = torch.randn(1, 3, 64, 64)
    assert count(competing, x).flops == count(paper, x).flops > 0
    with torch.no_grad():
        assert not torch.allclose(competing(x), paper(x))
    with pytest.raises(ValueError, match="unknown softmax_over 'token'; choose one of pixels, tokens"):
        small("vtfpn_resnet50", softmax_over="token")
