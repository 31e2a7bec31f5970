"""timm: vt's classifiers through ``timm.create_model`` (registered on ``import vt``), features_only, pretrained_cfg."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

import vt  # noqa: E402  (registers the classifiers with timm)
import vt.models  # noqa: E402
from vt.models import list_models  # noqa: E402
from vt.models.timm import LevelFeatures, timm_name  # noqa: E402

SMALL = dict(token_channels=32, qk_channels=16, ffn_channels=16)  # a fast VT stage


def test_every_vt_classifier_is_a_timm_model_and_timms_resnets_stay_timms() -> None:
    names = [timm_name(n) for n in list_models("classification")]
    assert set(names) <= set(timm.list_models("vt_*"))
    assert "vt_resnet18" in names and "vt_baseline_resnet18" in names
    assert type(timm.create_model("resnet18")).__module__.startswith("timm.")


def test_vt_resnet50_features_only_gives_c2_to_c5_as_feature_info_states(one_thread) -> None:
    model = timm.create_model("vt_resnet50", features_only=True).eval()
    info = model.feature_info
    assert info.channels() == [256, 512, 1024, 1024] and info.reduction() == [4, 8, 16, 16]
    with torch.no_grad():
        maps = model(torch.randn(2, 3, 64, 64))
    assert [m.shape for m in maps] == [(2, c, 64 // r, 64 // r) for c, r in zip(info.channels(), info.reduction())]


def test_out_indices_pick_levels_and_later_stages_are_dropped(one_thread) -> None:
    model = timm.create_model("vt_baseline_resnet18", features_only=True, out_indices=(1, 2))
    assert isinstance(model, LevelFeatures) and model.feature_info.channels() == [128, 256]
    assert model.model.layer4 is None and model.model.fc is None
    assert [m.shape[1] for m in model(torch.randn(1, 3, 64, 64))] == [128, 256]


def test_out_indices_beyond_c5_are_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="must pick among C2..C5"):
        timm.create_model("vt_resnet18", features_only=True, out_indices=(4,))


def test_create_model_takes_num_classes_and_vt_options(one_thread) -> None:
    model = timm.create_model("vt_resnet18", pretrained=False, num_classes=7, num_tokens=8, **SMALL).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model.layer4.cfg.num_tokens == 8


def test_timm_feature_methods_have_timms_meaning(one_thread) -> None:
    """forward_features: unpooled final representation; forward_head(pre_logits): the pooled vector."""
    model = timm.create_model("vt_resnet18", num_classes=5, num_tokens=8, **SMALL).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 8, 32)
        assert model.forward_head(tokens, pre_logits=True).shape == (2, 32)
        assert torch.allclose(model.forward_head(tokens), model(x))
    baseline = timm.create_model("vt_baseline_resnet18", num_classes=5).eval()
    assert baseline.forward_features(x).shape == (2, 512, 1, 1)


def test_pretrained_cfg_describes_vts_evaluation_transform() -> None:
    cfg = timm.create_model("vt_resnet34", num_tokens=8, **SMALL).pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875
    assert cfg["interpolation"] == "bilinear" and cfg["mean"] == (0.485, 0.456, 0.406)
    assert cfg["first_conv"] == "conv1" and cfg["classifier"] == "fc"
    assert timm.data.resolve_data_config({}, model=timm.create_model("vt_baseline_resnet18"))["std"] == (
        0.229, 0.224, 0.225)


def test_pretrained_without_a_weight_source_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="no published vt_resnet18 weights"):
        timm.create_model("vt_resnet18", pretrained=True)


def test_pretrained_from_a_local_file_loads_it(tmp_path, one_thread) -> None:
    """timm's own loading; as for its models, a classifier of another size than the cfg's keeps its init."""
    source = timm.create_model("vt_resnet18", num_classes=3, num_tokens=8, **SMALL)
    torch.save(source.state_dict(), tmp_path / "vt18.pth")
    model = timm.create_model("vt_resnet18", pretrained=True, num_classes=3, num_tokens=8, **SMALL,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / "vt18.pth"), num_classes=3))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in source.state_dict().items())


def test_timm_resnet_weights_fill_the_trunk(monkeypatch, one_thread) -> None:
    """``trunk_weights="timm"`` takes timm's ResNet-18 (here randomly initialised: no download); its layout fits."""
    make = timm.create_model
    asked = []

    def no_download(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        asked.append((name, pretrained))
        return make(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", no_download)
    monkeypatch.setattr(timm, "is_model_pretrained", lambda name: True)
    model = vt.models.create_model("vt_resnet18", trunk_weights="timm:a1_in1k", num_tokens=8, **SMALL)
    assert asked == [("resnet18.a1_in1k", True)]
    assert model.trunk_weights_report.format == "timm" and model.trunk_weights_report.missing == []


def test_unknown_timm_weights_are_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="timm has no pretrained weights 'resnet18.no_such_tag'"):
        vt.models.create_model("vt_resnet18", trunk_weights="timm:no_such_tag")
