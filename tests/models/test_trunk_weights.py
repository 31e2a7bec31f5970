"""VT-ResNets (and ResNets) whose stem and stages 1-3 start from a ResNet's weights: load, report, freeze."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import resnet18, resnet50
from torchvision.ops.misc import FrozenBatchNorm2d

from vt.models import create_model
from vt.models.trunk import TRUNK, trunk_of, trunk_parameters

SMALL = dict(token_channels=32, qk_channels=16, ffn_channels=16, out_channels=64)  # a fast VT stage


@pytest.fixture(scope="module")
def torchvision_r50(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """A randomly initialised torchvision ResNet-50, saved as torchvision publishes its weights."""
    torch.manual_seed(0)
    model = resnet50()
    for m in model.modules():  # BatchNorm starts at 1/0; random statistics make the equality check bite
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight)
            torch.nn.init.uniform_(m.running_var, 0.5, 2)
            torch.nn.init.normal_(m.bias)
            torch.nn.init.normal_(m.running_mean)
    path = tmp_path_factory.mktemp("trunk") / "resnet50.pth"
    torch.save(model.state_dict(), path)
    return str(path), model.state_dict()


def test_vt_resnet50_trunk_equals_every_torchvision_tensor(torchvision_r50) -> None:
    path, state = torchvision_r50
    model = create_model("vt_resnet50", trunk_weights=path, **SMALL)
    trunk = trunk_of(model).state_dict()
    assert trunk and all(torch.equal(tensor, state[key]) for key, tensor in trunk.items())


def test_trunk_report_lists_the_last_stage_and_head_as_unexpected(torchvision_r50) -> None:
    model = create_model("vt_resnet50", trunk_weights=torchvision_r50[0], **SMALL)
    report = model.trunk_weights_report
    assert report.missing == [] and report.mismatched == []
    assert {k.split(".")[0] for k in report.unexpected} == {"layer4", "fc"}
    assert len(report.loaded) == len(trunk_of(model).state_dict())


def test_vt_stage_and_head_keep_their_initialisation(torchvision_r50) -> None:
    torch.manual_seed(1)
    plain = create_model("vt_resnet50", **SMALL)
    torch.manual_seed(1)
    loaded = create_model("vt_resnet50", trunk_weights=torchvision_r50[0], **SMALL)
    rest = {k: v for k, v in plain.state_dict().items() if k.split(".")[0] not in TRUNK}
    assert rest and all(torch.equal(v, loaded.state_dict()[k]) for k, v in rest.items())
    assert not torch.equal(plain.conv1.weight, loaded.conv1.weight)


def test_resnet_baseline_takes_the_same_trunk(torchvision_r50) -> None:
    path, state = torchvision_r50
    model = create_model("resnet50", trunk_weights=path, num_classes=3)
    assert torch.equal(model.layer3[5].bn3.running_var, state["layer3.5.bn3.running_var"])
    assert not torch.equal(model.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])


def test_wrong_architecture_is_a_one_line_error(tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"do not fit the resnet50 trunk.*give the weights of a resnet50") as err:
        create_model("vt_resnet50", trunk_weights=str(path), **SMALL)
    assert "\n" not in str(err.value)


def test_missing_file_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("vt_resnet18", trunk_weights=str(tmp_path / "nope.pth"))


def test_vt_checkpoint_is_a_trunk_source(tmp_path) -> None:
    """A vt classifier's Lightning checkpoint (weights under ``model.``, an EMA copy beside them)."""
    source = create_model("resnet18")
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    state |= {f"ema.module.{k}": torch.zeros_like(v) for k, v in source.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "cls.ckpt")
    model = create_model("vt_resnet18", trunk_weights=str(tmp_path / "cls.ckpt"))
    assert torch.equal(model.layer2[1].conv2.weight, source.layer2[1].conv2.weight)


def test_torchvision_source_goes_through_its_weights_api(monkeypatch, torchvision_r50) -> None:
    """``"torchvision"`` asks torchvision for ResNet-50's DEFAULT weights (here a stand-in: no download)."""
    asked = []

    def fake_get_state_dict(weights, *args, **kwargs):
        asked.append(weights)
        return torch.load(torchvision_r50[0], weights_only=True)

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", fake_get_state_dict)
    model = create_model("vt_resnet50", trunk_weights="torchvision", **SMALL)
    assert asked == [torchvision.models.ResNet50_Weights.DEFAULT]
    assert model.trunk_weights_report.format == "torchvision"
    assert torch.equal(model.conv1.weight, torchvision_r50[1]["conv1.weight"])


def test_unknown_torchvision_weights_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        create_model("vt_resnet18", trunk_weights="torchvision:IMAGENET22K")


def test_frozen_trunk_has_no_gradient_and_fixed_statistics() -> None:
    model = create_model("vt_resnet18", freeze_trunk=True, **SMALL).train()
    assert not any(p.requires_grad for p in trunk_parameters(model))
    assert all(p.requires_grad for n, p in model.named_parameters() if n.split(".")[0] not in TRUNK)
    assert isinstance(model.bn1, FrozenBatchNorm2d) and isinstance(model.layer3[0].bn1, FrozenBatchNorm2d)
    before = model.layer1[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.equal(model.layer1[0].bn1.running_mean, before) and model.fc.weight.grad is not None


def test_trunk_options_are_refused_by_models_without_a_trunk() -> None:
    with pytest.raises(ValueError, match="does not take"):
        create_model("fpn_resnet50", trunk_weights="x.pth")
