"""Training on a pretrained trunk: the task's trunk_weights, freeze_trunk and trunk_lr_mult."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt import load_model
from vt.checkpoint import write_checkpoint
from vt.cli import main
from vt.models.trunk import trunk_parameters
from vt.tasks import ClassificationTask

CLS = {"--backbone": "--model.name"}


def make_task(**overrides: object) -> ClassificationTask:
    args = dict(name="resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE, recipe="synthetic") | overrides
    return ClassificationTask(**args)  # type: ignore[arg-type]


def test_trunk_lr_mult_scales_the_trunks_learning_rate_only() -> None:
    task = make_task(trunk_lr_mult=0.1)
    trainer = tiny_trainer(fast_dev_run=1)
    trainer.fit(task, tiny_data())
    groups = trainer.optimizers[0].param_groups
    trunk = {id(p) for p in trunk_parameters(task.model)}
    rates = {("trunk" if id(g["params"][0]) in trunk else "rest", g["initial_lr"]) for g in groups}
    (rest,), (scaled,) = ({lr for kind, lr in rates if kind == k} for k in ("rest", "trunk"))
    assert scaled == pytest.approx(0.1 * rest)
    assert sum(len(g["params"]) for g in groups) == len(list(task.model.parameters()))


def test_frozen_trunk_is_left_out_of_the_optimizer() -> None:
    task = make_task(name="vt_resnet18", freeze_trunk=True)
    trainer = tiny_trainer(fast_dev_run=1)
    trainer.fit(task, tiny_data())
    optimized = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optimized and not optimized & {id(p) for p in trunk_parameters(task.model)}
    assert task.model_args["freeze_trunk"] is True  # the frozen BatchNorms are part of the rebuilt model


def test_trunk_weights_load_and_the_checkpoint_rebuilds_without_them(tmp_path: Path) -> None:
    source = resnet18()
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    task = make_task(name="vt_resnet18", trunk_weights=str(tmp_path / "r18.pth"))
    assert torch.equal(task.model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    checkpoint = {"state_dict": task.state_dict()}
    write_checkpoint(checkpoint, "vt_resnet18", task.model_args, None)
    torch.save(checkpoint, tmp_path / "run.ckpt")
    (tmp_path / "r18.pth").unlink()  # a checkpoint moved to another machine
    model = load_model(tmp_path / "run.ckpt")
    assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)


@pytest.mark.parametrize(("options", "message"), [
    (dict(trunk_lr_mult=0.0), "trunk_lr_mult must be positive"),
    (dict(trunk_lr_mult=0.1, freeze_trunk=True), "a frozen trunk is not trained"),
])
def test_contradictory_trunk_options_are_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_task(**options)


def test_trunk_options_are_typed_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main("classification", CLS, ["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "--model.trunk_lr_mult TRUNK_LR_MULT" in flat and "(type: float, default: 1.0)" in flat
    assert "--model.freeze_trunk {true,false}" in flat and "--model.trunk_weights TRUNK_WEIGHTS" in flat
    # ClassificationTask's own docstring reaches --help, not only VTTask's.
    assert "the trunk's learning rate as a multiple of the recipe's" in flat
