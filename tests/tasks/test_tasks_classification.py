from pathlib import Path

import pytest
import torch

from task_fixtures import BATCH_SIZE, NUM_CLASSES, tiny_data, tiny_trainer
from vt.tasks import ClassificationTask


def make_task(**overrides: object) -> ClassificationTask:
    args = dict(name="resnet18", num_classes=NUM_CLASSES, batch_size=BATCH_SIZE) | overrides
    return ClassificationTask(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["resnet18", "vt_resnet18"])
def test_fast_dev_run_fits_and_validates(name: str) -> None:
    trainer = tiny_trainer(fast_dev_run=2)
    trainer.fit(make_task(name=name), tiny_data())
    assert {"train/loss", "train/lr", "val/acc1", "val/acc5", "val/loss"} <= set(trainer.callback_metrics)


def test_advanced_recipe_fits_with_ema_stochastic_depth_and_dropout() -> None:
    task = make_task(name="vt_resnet18", recipe="advanced")
    trainer = tiny_trainer(fast_dev_run=2)
    trainer.fit(task, tiny_data(recipe="advanced"))
    assert task.ema is not None and int(task.ema.n_averaged) == 1 + 2  # the initial weights, 2 steps
    assert task.model_args == {"num_classes": NUM_CLASSES, "drop_path": 0.1, "dropout": 0.2}


def test_resnet_ignores_the_recipes_stochastic_depth() -> None:
    assert "drop_path" not in make_task(recipe="advanced").model_args


def test_explicit_stochastic_depth_on_a_resnet_is_an_error() -> None:
    with pytest.raises(ValueError, match="model .resnet18. does not take .drop_path.; it takes: num_classes, dropout"):
        make_task(drop_path=0.1)


def test_segmentation_model_is_refused() -> None:
    with pytest.raises(ValueError, match="classification models:"):
        make_task(name="fpn_resnet50")


def test_top5_is_clamped_to_the_number_of_classes() -> None:
    task = make_task()
    assert task.val_metrics["acc5"].top_k == NUM_CLASSES


def test_no_weight_decay_on_norms_and_biases() -> None:
    trainer = tiny_trainer(fast_dev_run=1)
    trainer.fit(make_task(), tiny_data())
    decayed, free = trainer.optimizers[0].param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and free["weight_decay"] == 0.0


def test_distillation_trains_towards_the_teacher(tmp_path: Path) -> None:
    teacher = make_task()
    checkpoint = tmp_path / "teacher.pt"
    torch.save(teacher.model.state_dict(), checkpoint)
    student = make_task(teacher=str(checkpoint), teacher_name="resnet18", kd_weight=1.0)
    batch = next(iter(_loader()))
    logits = student.model(batch["image"])
    with torch.no_grad():
        target = teacher.model.eval()(batch["image"])
    loss = student.training_loss(logits, batch)
    expected = torch.nn.functional.kl_div(
        logits.log_softmax(1), target.log_softmax(1), reduction="batchmean", log_target=True
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _loader() -> torch.utils.data.DataLoader:
    data = tiny_data()
    data.setup("fit")
    return data.train_dataloader()


TINY_VT = dict(token_channels=32, qk_channels=16, ffn_channels=32)


def test_token_diversity_adds_the_weighted_overlap_of_the_token_maps_to_the_loss() -> None:
    torch.manual_seed(0)
    task = make_task(name="vt_resnet18", token_diversity=0.5, options=TINY_VT).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, extra = task.training_forward(images)
        _, overlap = task.model(images, return_map_overlap=True)
        assert torch.allclose(logits, task.model(images)) and 0 < overlap < 1
    assert extra.item() == pytest.approx(0.5 * overlap.item())
    assert make_task(name="vt_resnet18", options=TINY_VT).training_forward(images)[1] is None  # off by default
    trainer = tiny_trainer(fast_dev_run=2)
    trainer.fit(make_task(name="vt_resnet18", token_diversity=1.0, options=TINY_VT), tiny_data(image_size=64))
    assert 0 < trainer.callback_metrics["train/map_overlap"] < 1


def test_token_overlap_floor_leaves_maps_that_overlap_less_alone() -> None:
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for share, expected_share in ((0.5, 0.5), (1.01, 0.0)):  # floor at half the overlap, and above it
        torch.manual_seed(0)
        task = make_task(name="vt_resnet18", token_diversity=2.0, options=TINY_VT).eval()
        with torch.no_grad():
            _, overlap = task.model(images, return_map_overlap=True)
        task.hparams.token_overlap_floor = min(share * overlap.item(), 0.999)
        with torch.no_grad():
            extra = task.training_forward(images)[1].item()
        assert extra == pytest.approx(2.0 * expected_share * overlap.item(), abs=1e-6)


@pytest.mark.parametrize(("name", "weight", "message"), [
    ("resnet18", 1.0, "token_diversity needs a model with visual tokens; resnet18 has none"),
    ("vt_resnet18", -0.1, "token_diversity must be a finite number >= 0, got -0.1"),
])
def test_token_diversity_is_refused_where_it_cannot_apply(name: str, weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_task(name=name, token_diversity=weight)


def test_token_overlap_floor_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"token_overlap_floor must be in \[0, 1\), got 1.0"):
        make_task(name="vt_resnet18", token_diversity=1.0, token_overlap_floor=1.0)
    with pytest.raises(ValueError, match="token_overlap_floor shapes the token-diversity term, which is off"):
        make_task(name="vt_resnet18", token_overlap_floor=0.5)
