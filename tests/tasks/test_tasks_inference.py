from pathlib import Path

import pytest
import torch

from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt import load_model
from vt.data import SHAPES
from vt.inference import read_checkpoint
from vt.tasks import ClassificationTask, SegmentationTask


def train_and_save(tmp_path: Path, **task_args: object) -> tuple[ClassificationTask, Path]:
    task = ClassificationTask(**(dict(name="vt_resnet18", num_classes=NUM_CLASSES, batch_size=4) | task_args))
    trainer = tiny_trainer(max_steps=2, limit_val_batches=1)
    trainer.fit(task, tiny_data())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return task, path


def test_load_model_gives_the_trained_model_in_eval_mode(tmp_path: Path) -> None:
    task, path = train_and_save(tmp_path)
    model = load_model(path)
    images = torch.randn(2, 3, 32, 32)
    assert not model.training
    # The task trained channels-last, the loaded model is NCHW: the same weights, sums in another order.
    torch.testing.assert_close(model(images), task.model.eval()(images), rtol=1e-4, atol=1e-5)


def test_load_model_prefers_the_weight_average(tmp_path: Path) -> None:
    task, path = train_and_save(tmp_path, recipe="advanced")
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(load_model(path)(images), task.ema.module.eval()(images), rtol=1e-4, atol=1e-5)


def test_checkpoint_names_the_classes_and_the_image_size(tmp_path: Path) -> None:
    info, _ = read_checkpoint(train_and_save(tmp_path)[1])
    assert (info.class_names, info.image_size) == (list(SHAPES)[:NUM_CLASSES], 32)


def test_loaded_model_names_its_outputs(tmp_path: Path) -> None:
    assert load_model(train_and_save(tmp_path)[1]).class_names == list(SHAPES)[:NUM_CLASSES]


def test_segmentation_checkpoint_names_the_mask_classes(tmp_path: Path) -> None:
    task = SegmentationTask(
        name="fpn_resnet50", num_classes=NUM_CLASSES + 1, batch_size=BATCH_SIZE,
        options={"out_channels": 32, "head_channels": 32},
    )
    trainer = tiny_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(task, tiny_data())
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    info, _ = read_checkpoint(tmp_path / "model.ckpt")
    assert info.class_names == ["background", *list(SHAPES)[:NUM_CLASSES]]


def test_plain_state_dict_loads_with_a_model_name(tmp_path: Path) -> None:
    task, _ = train_and_save(tmp_path)
    path = tmp_path / "weights.pth"
    torch.save(task.model.state_dict(), path)
    model = load_model(path, name="vt_resnet18", num_classes=NUM_CLASSES)
    images = torch.randn(1, 3, 32, 32)
    # The task trained channels-last, the loaded model is NCHW: the same weights, sums in another order.
    torch.testing.assert_close(model(images), task.model.eval()(images), rtol=1e-4, atol=1e-5)


def test_plain_state_dict_without_a_name_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="pass the model name too"):
        load_model(path)
