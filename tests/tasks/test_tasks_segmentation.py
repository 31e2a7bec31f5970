import pytest
import torch

from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt.tasks import SegmentationTask

# Narrow pyramid, head and tokens: the same code paths at a fraction of the cost.
SMALL = {"out_channels": 32, "head_channels": 32}


def make_task(name: str = "vtfpn_resnet50", **overrides: object) -> SegmentationTask:
    options = SMALL | ({"token_channels": 64} if name.startswith("vt") else {})
    args = dict(name=name, num_classes=NUM_CLASSES + 1, batch_size=BATCH_SIZE, options=options)
    return SegmentationTask(**(args | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["fpn_resnet50", "vtfpn_resnet50"])
def test_fast_dev_run_fits_and_validates(name: str) -> None:
    trainer = tiny_trainer(fast_dev_run=1)
    trainer.fit(make_task(name), tiny_data())
    assert {"train/loss", "val/miou", "val/pixel_acc", "val/loss"} <= set(trainer.callback_metrics)


def test_ignored_pixels_count_for_nothing() -> None:
    task = make_task()
    logits = torch.randn(1, NUM_CLASSES + 1, 2, 2)
    mask = torch.tensor([[[1, 2], [255, 255]]])
    assert task.loss(logits, mask) == pytest.approx(task.loss(logits[..., :1, :], mask[:, :1]).item())


def test_miou_averages_the_classes_present() -> None:
    task = make_task()
    metric = task.val_metrics
    prediction = torch.tensor([[[0, 0], [1, 1]]])
    metric.update(prediction, torch.tensor([[[0, 0], [1, 255]]]))
    assert metric.compute()["mIoU"].item() == pytest.approx(1.0)


def test_classifier_is_refused() -> None:
    with pytest.raises(ValueError, match="segmentation models:"):
        SegmentationTask(name="resnet18", num_classes=3, batch_size=2)
