"""Loading local checkpoints into backbones: torchvision state dicts and our Lightning checkpoints."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18, resnet50

from vt.models import create_model
from vt.models.backbones import resnet_backbone
from vt.models.weights import load_weights, read_state_dict


@pytest.fixture(scope="module")
def torchvision_r50(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """A randomly initialised torchvision ResNet-50 saved as torchvision publishes its weights."""
    torch.manual_seed(0)
    state = resnet50().state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "resnet50.pth"
    torch.save(state, path)
    return str(path), state


@pytest.fixture(scope="module")
def lightning_r50(tmp_path_factory, torchvision_r50) -> str:
    """The same weights as a vt classifier's Lightning checkpoint, plus a non-model entry."""
    _, state = torchvision_r50
    path = tmp_path_factory.mktemp("ckpt") / "classifier.ckpt"
    model_keys = {f"model.{k}": v for k, v in state.items()}
    torch.save({"epoch": 3, "state_dict": {**model_keys, "teacher.fc.weight": torch.zeros(2, 2)}}, path)
    return str(path)


def test_torchvision_checkpoint_loads_every_backbone_key(torchvision_r50):
    path, state = torchvision_r50
    net, report = resnet_backbone(50, weights=path)
    assert report is not None and report.format == "torchvision"
    assert report.missing == [] and report.mismatched == []
    assert torch.equal(net.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])


def test_classifier_head_keys_are_reported_unexpected(torchvision_r50):
    _, report = resnet_backbone(50, weights=torchvision_r50[0])
    assert report is not None and sorted(report.unexpected) == ["fc.bias", "fc.weight"]


def test_lightning_checkpoint_is_stripped_of_the_model_prefix(lightning_r50, torchvision_r50):
    net, report = resnet_backbone(50, weights=lightning_r50)
    assert report is not None and report.format == "lightning" and report.missing == []
    assert torch.equal(net.conv1.weight, torchvision_r50[1]["conv1.weight"])


def test_lightning_entries_outside_the_model_are_reported_unexpected(lightning_r50):
    _, report = resnet_backbone(50, weights=lightning_r50)
    assert report is not None and "teacher.fc.weight" in report.unexpected


def test_mismatched_shapes_are_reported_not_loaded(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    _, report = resnet_backbone(50, weights=str(path))
    assert report is not None
    assert "layer1.0.conv1.weight: checkpoint (64, 64, 3, 3) vs model (64, 64, 1, 1)" in report.mismatched
    assert "layer1.0.conv1.weight" in report.missing and "conv1.weight" in report.loaded


def test_segmenter_builder_loads_backbone_weights(torchvision_r50):
    path, state = torchvision_r50
    model = create_model("vtfpn_resnet50", backbone_weights=path, out_channels=32, head_channels=32,
                         token_channels=64, qk_channels=16, ffn_channels=16)
    assert model.backbone_weights_report.missing == []
    assert torch.equal(model.backbone.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])


def test_frozen_bn_keeps_the_loaded_statistics(torchvision_r50):
    path, state = torchvision_r50
    net, _ = resnet_backbone(50, weights=path, frozen_bn=True)
    net.train()(torch.randn(2, 3, 64, 64))
    assert torch.equal(net.layer2[0].bn2.running_var, state["layer2.0.bn2.running_var"])


def test_torchvision_reference_script_format_is_read(tmp_path, torchvision_r50):
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": torchvision_r50[1], "epoch": 1}, path)
    assert read_state_dict(path)[1] == "torchvision"


def test_missing_file_says_nothing_is_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "absent.pth")


def test_unreadable_layout_is_rejected(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(ValueError, match="Lightning"):
        read_state_dict(path)
