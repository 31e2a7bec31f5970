"""The vt checkpoint format: written and read back, old checkpoints, and what other readers find in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from vt import load_model
from vt.checkpoint import (
    EMA_COUNT,
    EMA_PREFIX,
    MODEL_KEY,
    MODEL_PREFIX,
    CheckpointInfo,
    read_checkpoint,
    restore_rng,
    upgrade_checkpoint,
    write_checkpoint,
)
from vt.models import create_model
from vt.models.backbones import resnet_backbone

NAME, ARGS, CLASSES = "resnet18", {"num_classes": 3}, ["a", "b", "c"]


def lightning_checkpoint(ema: bool = False) -> tuple[dict[str, Any], torch.nn.Module]:
    """What Lightning saves of a task with ``model`` (and, with ``ema``, a different averaged copy)."""
    torch.manual_seed(0)
    model = create_model(NAME, **ARGS)
    state = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    if ema:
        averaged = create_model(NAME, **ARGS)
        state |= {EMA_PREFIX + k: v for k, v in averaged.state_dict().items()}
        state[EMA_COUNT] = torch.tensor(3)
        model = averaged
    checkpoint = {"state_dict": state, "datamodule_hyper_parameters": {"image_size": 64}}
    write_checkpoint(checkpoint, NAME, {**ARGS, "backbone_weights": "absent.pth"}, CLASSES)
    return checkpoint, model


def save(checkpoint: dict[str, Any], path: Path) -> Path:
    torch.save(checkpoint, path)
    return path


def test_written_checkpoint_reads_back_its_model_description(tmp_path: Path) -> None:
    info, _ = read_checkpoint(save(lightning_checkpoint()[0], tmp_path / "m.ckpt"))
    assert info == CheckpointInfo(NAME, ARGS, CLASSES, image_size=64, ema=False)


def test_written_checkpoint_leaves_out_init_only_arguments() -> None:
    assert lightning_checkpoint()[0][MODEL_KEY]["args"] == ARGS


@pytest.mark.parametrize("ema", [False, True])
def test_written_checkpoint_loads_the_model_it_was_written_from(tmp_path: Path, ema: bool) -> None:
    checkpoint, model = lightning_checkpoint(ema)
    images = torch.randn(1, 3, 64, 64)
    loaded = load_model(save(checkpoint, tmp_path / "m.ckpt"))
    assert torch.equal(loaded(images), model.eval()(images))


def test_restored_random_state_repeats_the_draws() -> None:
    checkpoint, _ = lightning_checkpoint()
    expected = torch.rand(3)
    torch.rand(5)
    restore_rng(checkpoint)
    assert torch.equal(torch.rand(3), expected)


def old_format(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as ``vt`` wrote it before its EMA was an `AveragedModel`: a count of updates."""
    state = dict(checkpoint["state_dict"])
    state["ema.num_updates"] = state.pop(EMA_COUNT) - 1
    return {**checkpoint, "state_dict": state}


def test_old_ema_update_count_becomes_the_number_of_averaged_models() -> None:
    checkpoint = old_format(lightning_checkpoint(ema=True)[0])
    upgrade_checkpoint(checkpoint)
    assert int(checkpoint["state_dict"][EMA_COUNT]) == 3 and "ema.num_updates" not in checkpoint["state_dict"]


def test_old_format_checkpoint_loads_its_averaged_weights(tmp_path: Path) -> None:
    checkpoint, averaged = lightning_checkpoint(ema=True)
    images = torch.randn(1, 3, 64, 64)
    loaded = load_model(save(old_format(checkpoint), tmp_path / "old.ckpt"))
    assert torch.equal(loaded(images), averaged.eval()(images))


def test_checkpoint_with_an_ema_gives_a_backbone_the_trained_not_the_averaged_weights(tmp_path: Path) -> None:
    checkpoint, _ = lightning_checkpoint(ema=True)
    backbone, _ = resnet_backbone(18, stride_in_1x1=False, weights=str(save(checkpoint, tmp_path / "m.ckpt")))
    assert torch.equal(backbone.conv1.weight, checkpoint["state_dict"][MODEL_PREFIX + "conv1.weight"])


@pytest.mark.parametrize(("old_args", "queries"), [({}, "tokens"), ({"center_tokens": False}, "tokens"),
                                                   ({"center_tokens": True}, "centred")])
def test_checkpoint_from_before_query_kinds_loads_as_it_was_built(
    tmp_path: Path, old_args: dict[str, Any], queries: str
) -> None:
    # Before `queries` (default "both", with a second query LayerNorm) the tokenizer had a
    # `center_tokens` flag, False by default.
    torch.manual_seed(0)
    args = {"num_classes": 3, "token_channels": 32}
    model = create_model("vt_resnet18", **args, queries=queries).eval()
    checkpoint = {"state_dict": {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}}
    write_checkpoint(checkpoint, "vt_resnet18", {**args, **old_args}, None)
    loaded = load_model(save(checkpoint, tmp_path / "old.ckpt"))
    assert loaded.layer4.blocks[1].tokenizer.queries == queries
    images = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(images), model(images))
