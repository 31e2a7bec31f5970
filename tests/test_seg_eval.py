"""The segmentation evaluation protocol: original resolution, flip and multi-scale TTA, sliding window, scores."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from vt.data import LIPDataModule
from vt.data.lip import LIP_FLIP_PAIRS
from vt.data.segmentation import collate_original_size
from vt.data.transforms import flip_permutation
from vt.tasks import SegmentationTask
from vt.tasks.seg_eval import ConfusionMatrix, SegmentationProtocol, segment, segment_scores, view_logits

CROP = 32  # the datamodule's image_size: the training crop, and the network input's longer side
VAL_SIZES = ((30, 40), (57, 23), (32, 32))  # (height, width): larger, smaller and equal to the crop
NUM_CLASSES = 20


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one intra-op thread (`one_thread`, tests/conftest.py)."""


def _blocky_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """LIP ids in 4-pixel blocks, every left/right part among them, a strip of ignore on top."""
    blocks = rng.integers(0, NUM_CLASSES, size=(math.ceil(height / 4), math.ceil(width / 4)), dtype=np.uint8)
    blocks.flat[: 6] = np.arange(14, 20)
    ids = np.kron(blocks, np.ones((4, 4), np.uint8))[:height, :width]
    ids[0] = 255
    return ids


@pytest.fixture
def lip_sizes_root(tmp_path: Path) -> str:
    """LIP's released layout, val images of `VAL_SIZES` (none the crop's shape but one)."""
    rng = np.random.default_rng(0)
    for split, sizes in (("train", VAL_SIZES * 2), ("val", VAL_SIZES)):
        ids = [f"{1000 + i}_{split}" for i in range(len(sizes))]
        for sample_id, (height, width) in zip(ids, sizes):
            image = tmp_path / "TrainVal_images" / f"{split}_images" / f"{sample_id}.jpg"
            mask = tmp_path / "TrainVal_parsing_annotations" / f"{split}_segmentations" / f"{sample_id}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(image)
            Image.fromarray(_blocky_mask(rng, height, width), mode="L").save(mask)
        (tmp_path / "TrainVal_images" / f"{split}_id.txt").write_text("\n".join(ids) + "\n")
    return str(tmp_path)


def _lip(root: str) -> LIPDataModule:
    return LIPDataModule(root, image_size=CROP, batch_size=3, num_workers=0)


def _val_masks(root: str) -> list[Tensor]:
    datamodule = _lip(root)
    datamodule.setup("validate")
    return [datamodule.val_set[i]["mask"] for i in range(len(datamodule.val_set))]


def _one_hot(mask: Tensor) -> Tensor:
    """Logits ``(1, K, H, W)`` of a mask: 1 on its class, 0 elsewhere (ignore pixels: background)."""
    return F.one_hot(mask.long().where(mask != 255, 0), NUM_CLASSES).permute(2, 0, 1)[None].float()


def _mirrored(mask: Tensor) -> Tensor:
    """What a perfect parser sees in the mirrored image: the flipped mask, left and right swapped."""
    return flip_permutation(LIP_FLIP_PAIRS)[mask.long().flip(-1)]


class Oracle(nn.Module):
    """Answers call ``k`` with the one-hot of the true mask at original size, whatever the input size.

    With ``views=2`` (flip TTA) calls alternate between an image and its mirror, to which it answers
    the mirrored mask: a perfect model of mirrored people.
    """

    def __init__(self, masks: list[Tensor], views: int = 1) -> None:
        super().__init__()
        self.masks, self.views, self.calls = masks, views, 0

    def forward(self, x: Tensor) -> Tensor:
        image, view = divmod(self.calls, self.views)
        self.calls += 1
        mask = self.masks[image]
        return _one_hot(_mirrored(mask) if view == 1 else mask)


def _test_with(model: nn.Module, root: str, **task_args: object) -> SegmentationTask:
    task = SegmentationTask(
        name="fpn_resnet50", num_classes=NUM_CLASSES, batch_size=3,
        options={"out_channels": 32, "head_channels": 32}, **task_args,  # type: ignore[arg-type]
    )
    task.model = model
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(task, _lip(root), verbose=False)
    return task


def test_oracle_scores_one_at_original_resolution(lip_sizes_root: str) -> None:
    task = _test_with(Oracle(_val_masks(lip_sizes_root)), lip_sizes_root)
    report = task.last_eval_report
    assert report is not None and (report["mIoU"], report["mAcc"], report["aAcc"]) == (1.0, 1.0, 1.0)


def test_oracle_scores_below_one_when_masks_are_resized(lip_sizes_root: str) -> None:
    """The former protocol: the mask resized (nearest) to the network input, logits resized to it too."""
    metric = ConfusionMatrix(NUM_CLASSES)
    protocol = SegmentationProtocol(size=CROP)
    for mask in _val_masks(lip_sizes_root):
        size = protocol.input_size(*mask.shape, 1.0)
        resized_mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
        logits = F.interpolate(_one_hot(mask), size=size, mode="bilinear", align_corners=False)
        metric.update(logits.argmax(1)[0], resized_mask)
    assert metric.compute()["mIoU"] < 0.95


def test_task_reports_per_class_iou_by_lip_name(lip_sizes_root: str) -> None:
    task = _test_with(Oracle(_val_masks(lip_sizes_root)), lip_sizes_root)
    classes = task.last_eval_report["classes"]  # type: ignore[index]
    assert (classes[14]["name"], classes[14]["IoU"], len(classes)) == ("left-arm", 1.0, NUM_CLASSES)


def test_mirrored_oracle_scores_one_with_flip_tta_on_lip(lip_sizes_root: str) -> None:
    task = _test_with(Oracle(_val_masks(lip_sizes_root), views=2), lip_sizes_root, tta="flip")
    assert task.last_eval_report["mIoU"] == 1.0  # type: ignore[index]


def test_flipped_view_without_the_label_swap_confuses_left_and_right() -> None:
    """The swap is what makes the mirrored oracle right: without it, its left arm is a right arm."""
    mask = torch.tensor([[14, 15, 16, 17, 18, 19, 0, 2]])
    oracle = Oracle([mask], views=2)
    unswapped = view_logits(oracle, torch.zeros(1, 3, 1, 8), SegmentationProtocol(flip=True))[1]
    assert unswapped.argmax(1)[0, 0, :6].tolist() == [15, 14, 17, 16, 19, 18]


class WidthLogits(nn.Module):
    """Two classes with logits ``(0, log(w / 20))`` everywhere for an input ``w`` pixels wide."""

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.zeros(len(x), 2, *x.shape[-2:])
        logits[:, 1] = math.log(x.shape[-1] / 20)
        return logits


def test_multiscale_averages_probabilities_at_original_size() -> None:
    # Scale 0.5 of a 40-pixel width: logits (0, 0), p = 1/2; scale 1: (0, log 2), p = 2/3.
    # The mean probability is 7/12; averaging logits instead would give sqrt2 / (1 + sqrt2) = 0.586.
    scores = segment_scores(WidthLogits(), torch.zeros(1, 3, 20, 40), SegmentationProtocol(scales=(0.5, 1.0)))
    assert scores.shape == (1, 2, 20, 40) and torch.allclose(scores.exp()[:, 1], torch.tensor(7 / 12))


class Scaled(nn.Module):
    """Logits at half the input's resolution: the evaluation must resize them back."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(torch.cat([x, -x], dim=1), 2)


def test_strips_give_the_whole_resize() -> None:
    """Built a few rows at a time (bounded memory), the prediction is that of one whole bilinear resize."""
    generator = torch.Generator().manual_seed(0)
    image, mask = torch.randn(2, 3, 37, 29, generator=generator), torch.randint(0, 6, (2, 37, 29), generator=generator)
    protocol = SegmentationProtocol(size=20)
    logits = F.interpolate(Scaled()(F.interpolate(image, size=protocol.input_size(37, 29, 1.0), mode="bilinear",
                                                  antialias=True)), size=(37, 29), mode="bilinear")
    strips = segment(Scaled(), image, protocol, mask, max_elements=6 * 2 * 29 * 3)  # 3 rows a strip
    expected = F.cross_entropy(logits, mask, reduction="sum")
    assert torch.equal(strips.prediction, logits.argmax(1)) and torch.allclose(strips.nll, expected, rtol=1e-5)


class Recorder(nn.Module):
    """Logits = the input itself; records the shape of every input."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.shapes.append(tuple(x.shape[-2:]))
        return x.clone()


def test_sliding_window_covers_every_pixel() -> None:
    image = torch.randn(1, 3, 50, 70, generator=torch.Generator().manual_seed(0))
    model = Recorder()
    scores = segment_scores(model, image, SegmentationProtocol(window=32, stride=20))
    # Overlapping windows of an identity average to the input itself; a missed pixel would be NaN.
    assert torch.allclose(scores, image.log_softmax(1), atol=1e-6) and max(map(max, model.shapes)) == 32


def test_sliding_window_runs_windows_of_the_window_size() -> None:
    model = Recorder()
    segment(model, torch.zeros(1, 3, 50, 70), SegmentationProtocol(window=32, stride=20))
    assert model.shapes == [(32, 32)] * 2 * 3  # rows at 0, 18; columns at 0, 20, 38


def test_confusion_matrix_scores_match_hand_computation() -> None:
    metric = ConfusionMatrix(num_classes=4)
    metric.update(torch.tensor([0, 1, 1, 1, 0, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 255, 255]))
    report = metric.report(["a", "b", "c", "d"])
    # matrix[target, prediction]: (0,0) 1, (0,1) 1, (1,1) 2, (2,0) 1; class d occurs nowhere labelled.
    # IoU a = 1/(2+2-1), b = 2/(2+3-2), c = 0/1; Acc a = 1/2, b = 1, c = 0; aAcc = 3/5.
    expected = {"mIoU": (1 / 3 + 2 / 3 + 0) / 3, "mAcc": (1 / 2 + 1 + 0) / 3, "aAcc": 3 / 5}
    assert {k: pytest.approx(report[k]) for k in expected} == expected
    assert [(c["IoU"], c["Acc"]) for c in report["classes"]] == [
        (pytest.approx(1 / 3), 0.5), (pytest.approx(2 / 3), 1.0), (0.0, 0.0), (None, None)
    ]


def test_confusion_matrix_rejects_labels_beyond_its_classes() -> None:
    with pytest.raises(ValueError, match="mask values must be 0..2"):
        ConfusionMatrix(num_classes=3).update(torch.tensor([0]), torch.tensor([7]))


def test_collate_keeps_original_sizes_and_pads_masks_with_ignore() -> None:
    samples = [{"image": torch.ones(3, h, w), "mask": torch.zeros(h, w, dtype=torch.long)} for h, w in ((4, 6), (5, 3))]
    batch = collate_original_size(samples)
    assert batch["size"].tolist() == [[4, 6], [5, 3]] and batch["image"].shape == (2, 3, 5, 6)
    assert (batch["mask"][1, :, 3:] == 255).all() and (batch["mask"][0, 4] == 255).all()


def test_lip_val_batch_keeps_every_image_at_its_original_size(lip_sizes_root: str) -> None:
    datamodule = _lip(lip_sizes_root)
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["size"].tolist() == [list(size) for size in VAL_SIZES] and batch["mask"].shape == (3, 57, 40)


def test_protocol_input_keeps_aspect_at_the_crop_size() -> None:
    assert SegmentationProtocol(size=32).input_size(57, 23, 1.5) == (48, 19)


def test_protocol_can_set_the_shorter_side_as_detectron2() -> None:
    assert SegmentationProtocol(size=800, side="shorter").input_size(480, 640, 1.0) == (800, 1067)


def test_protocol_rejects_a_stride_without_a_window() -> None:
    with pytest.raises(ValueError, match="stride 8 needs a window"):
        SegmentationProtocol(stride=8)


def test_predict_step_returns_one_mask_per_image_at_its_original_size() -> None:
    task = SegmentationTask(
        name="fpn_resnet50", num_classes=3, batch_size=2, options={"out_channels": 32, "head_channels": 32}
    )
    task.model = Scaled()
    sizes = ((40, 33), (35, 48))
    batch = collate_original_size([{"image": torch.randn(3, h, w), "mask": torch.zeros(h, w)} for h, w in sizes])
    assert [tuple(mask.shape) for mask in task.predict_step(batch, 0)] == list(sizes)


def test_test_protocol_takes_the_task_settings() -> None:
    task = SegmentationTask(
        name="fpn_resnet50", num_classes=3, batch_size=2, options={"out_channels": 32, "head_channels": 32},
        tta="flip", test_scales=(0.5, 1.0), eval_size=64, window=48,
    )
    protocol = task.eval_protocol("test")
    assert (protocol.views, protocol.size, protocol.window, task.eval_protocol("val").views) == (
        [(0.5, False), (0.5, True), (1.0, False), (1.0, True)], 64, 48, [(1.0, False)]
    )
