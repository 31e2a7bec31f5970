"""The command line of experiments/cls.py and experiments/seg.py (vt/cli.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import lightning as L
import pytest
from lightning.pytorch.plugins import TorchCheckpointIO
import torch
import yaml

from vt.cli import VTCLI, expand_aliases, main
from vt.data import SyntheticDataModule
from vt.tasks import AtomicCheckpointIO

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--backbone", "resnet18", "--data.image_size", "32", "--data.num_train", "16", "--data.num_val", "8",
    "--data.batch_size", "4", "--data.num_classes", "4", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]


def script(name: str) -> ModuleType:
    """An experiments/*.py script as a module (for its alias table)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLS, SEG = script("cls").ALIASES, script("seg").ALIASES


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def test_aliases_expand_to_full_keys() -> None:
    argv = ["--backbone", "vt_resnet34", "--recipe=advanced", "--data-dir", "/d", "--trainer.devices", "2"]
    assert expand_aliases(argv, CLS) == [
        "--model.name", "vt_resnet34", "--model.recipe", "advanced", "--data.root", "/d", "--trainer.devices", "2"
    ]


def test_data_name_selects_its_datamodule() -> None:
    assert expand_aliases(["--data", "lip"], SEG) == ["--data", "vt.data.LIPDataModule"]


def test_segmentation_model_alias_is_the_model_name() -> None:
    assert expand_aliases(["--model", "vtfpn_resnet50"], SEG) == ["--model.name", "vtfpn_resnet50"]


def test_print_config_shows_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main("classification", CLS, ["--backbone", "vt_resnet18", "--recipe", "advanced", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert exit_info.value.code == 0
    assert (config["model"]["name"], config["model"]["recipe"]) == ("vt_resnet18", "advanced")


def test_recipe_sets_the_data_augmentation_and_the_datamodule_sizes_the_model() -> None:
    cli = VTCLI("classification", expand_aliases(["--recipe", "advanced", "--data.num_classes", "5"], CLS))
    assert cli.datamodule.recipe == "advanced"
    assert (cli.model.hparams.num_classes, cli.model.hparams.batch_size) == (5, cli.datamodule.batch_size)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backbone", "resnet99"], "error: unknown model 'resnet99'; classification models: "),
        (["--backbone", "fpn_resnet50"], "error: 'fpn_resnet50' is a segmentation model"),
        (["--data", "imagenet"], "error: --data: the following arguments are required: root"),
        (["--data", "imagenet", "--data-dir", "/no/such"], "error: ImageNet root '/no/such': no such directory"),
        (["--data", "imagenet", "--data-dir", "."], "error: ImageNet root '.': no train/ folder. Expected"),
        (["--trainer.max_epochs", "many"], "error: --trainer.max_epochs: Expected a <class 'int'>"),
        (["--ckpt_path", "last"], "error: --ckpt_path last: no run of resnet34"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main("classification", CLS, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_help_shows_the_typed_model_settings_with_types_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main("classification", CLS, ["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "--model.vt.num_tokens NUM_TOKENS" in flat and "(type: int, default: 16)" in flat
    assert "--model.token_diversity TOKEN_DIVERSITY" in flat and "mean pairwise cosine of each VT module's tokenizer maps" in flat


@pytest.mark.parametrize(("task", "aliases", "argv", "message"), [
    ("classification", CLS, ["--model.vt.num_tokens", "abc"],
     "error: --model.vt.num_tokens: Expected a <class 'int'>. Got value: abc"),
    ("classification", CLS, ["--backbone", "resnet18", "--model.vt.num_tokens", "32"],
     "error: model 'resnet18' does not take 'num_tokens'; it takes: num_classes, dropout"),
    ("segmentation", SEG, ["--model", "fpn_resnet50", "--model.neck.num_tokens", "16"],
     "error: fpn_resnet50 does not take num_tokens; neck options: none"),
    ("classification", CLS, ["--backbone", "vt_resnet18", "--model.vt.num_tokens", "0"],
     "error: num_tokens must be a positive integer, got 0"),
])
def test_bad_model_settings_are_one_line_errors(
    task: str, aliases: dict[str, str], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(task, aliases, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_typed_model_settings_reach_the_builder() -> None:
    cli = VTCLI("classification", expand_aliases(["--backbone", "vt_resnet18", "--model.vt.num_tokens", "8"], CLS))
    assert cli.model.model_args["num_tokens"] == 8 and cli.model.model.layer4.cfg.num_tokens == 8


@pytest.mark.parametrize(("task", "aliases", "flag", "other"), [
    ("classification", CLS, "--backbone", "fpn_resnet50"), ("segmentation", SEG, "--model", "resnet18"),
])
def test_unknown_model_error_lists_only_the_task_models(
    task: str, aliases: dict[str, str], flag: str, other: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(task, aliases, [flag, "resnet99"]) == 2
    err = capsys.readouterr().err
    assert f"{task} models: " in err and other not in err and err.count("\n") == 1


def test_script_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "seg.py"), "--model", "vt_resnet18"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: 'vt_resnet18' is a classification model; segmentation models: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_run_writes_config_logs_and_checkpoints_then_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("classification", CLS, [*TINY, "--trainer.max_epochs", "1"]) == 0
    run = Path("runs/cls/resnet18/version_0")
    out = capsys.readouterr().out
    assert f"run directory: {run}" in out and "final validation: val/acc1" in out
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.ckpt"}
    assert any(p.name.startswith("best-epoch000-acc1") for p in (run / "checkpoints").iterdir())
    assert (run / "csv" / "version_0" / "metrics.csv").is_file() and list(run.glob("events.out.tfevents.*"))

    config = str(run / "config.yaml")
    resume = ["--config", config, "--trainer.max_epochs", "2", "--ckpt_path", "last"]
    assert main("classification", CLS, resume) == 0
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 8 and not Path("runs/cls/resnet18/version_1").exists()
    assert (run / "csv" / "version_0" / "metrics.csv").is_file()  # the first session's metrics are kept


def test_trainer_writes_checkpoints_atomically_unless_given_a_writer() -> None:
    default = VTCLI("classification", expand_aliases(TINY, CLS)).trainer.strategy.checkpoint_io
    given = VTCLI("classification", expand_aliases(
        [*TINY, "--trainer.plugins", "lightning.pytorch.plugins.TorchCheckpointIO"], CLS
    )).trainer.strategy.checkpoint_io
    assert isinstance(default, AtomicCheckpointIO) and type(given) is TorchCheckpointIO


def test_failed_resume_keeps_the_run_config() -> None:
    assert main("classification", CLS, [*TINY, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1"]) == 0
    config = Path("runs/cls/resnet18/version_0/config.yaml")
    before = config.read_text()
    # the classifier does not fit 5 classes: a one-line error (vt.checkpoint.check_checkpoint)
    assert main("classification", CLS, ["--config", str(config), "--ckpt_path", "last", "--data.num_classes", "5"]) == 2
    assert config.read_text() == before


class OverflowBatchNormAfterStep(L.Callback):
    """From step 5 (epoch 1), an update with a finite loss overflows a BatchNorm running variance."""

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, *_: object) -> None:
        if trainer.global_step >= 5:
            next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var.fill_(float("inf"))


def test_non_finite_state_stops_the_run_and_no_checkpoint_holds_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*TINY, "--trainer.max_epochs", "2", "--trainer.callbacks", f"{__name__}.OverflowBatchNormAfterStep"]
    assert main("classification", CLS, argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: non-finite weights or optimizer state after the update before epoch 1")
    assert err.count("\n") == 1
    saved = [torch.load(p, weights_only=False) for p in Path("runs/cls/resnet18/version_0/checkpoints").iterdir()]
    tensors = [t for c in saved for t in [*c["state_dict"].values(), *(
        v for o in c["optimizer_states"] for s in o["state"].values() for v in s.values())]]
    assert saved and all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


@pytest.mark.slow
def test_segmentation_run_on_synthetic_masks(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--model", "fpn_resnet50", "--model.options", "{out_channels: 32, head_channels: 32}",
        *TINY[2:], "--trainer.max_epochs", "1",
    ]
    assert main("segmentation", SEG, argv) == 0
    assert "val/miou" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_predict_prints_top_classes_or_writes_masks(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from vt.data import SHAPES
    from vt.tasks import ClassificationTask, SegmentationTask

    # 64: a segmenter's GroupNorm needs more than one value per group at stride 32, batch 1.
    data = SyntheticDataModule(image_size=64, batch_size=4, num_train=8, num_val=4, num_classes=4)
    if task == "classification":
        model = ClassificationTask(name="resnet18", num_classes=4, batch_size=4)
    else:
        options = {"out_channels": 32, "head_channels": 32}
        model = SegmentationTask(name="fpn_resnet50", num_classes=5, batch_size=4, options=options)
    trainer = L.Trainer(max_steps=1, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    Image.new("RGB", (40, 30), "white").save(tmp_path / "white.png")

    argv = ["predict.py", "--checkpoint", str(tmp_path / "model.ckpt"), str(tmp_path / "white.png"),
            "--out-dir", str(tmp_path / "masks")]
    monkeypatch.setattr(sys, "argv", argv)
    assert script("predict").main() == 0
    out = capsys.readouterr().out
    if task == "classification":
        assert out.startswith(f"{tmp_path / 'white.png'}: ") and all(name in out for name in list(SHAPES)[:4])
    else:
        assert Image.open(tmp_path / "masks" / "white.png").size == (40, 30)


def paper_configs() -> list[tuple[str, str]]:
    """(config, model) for every model each shipped config names in its header."""
    pairs = []
    for config in sorted((REPO / "experiments" / "configs").glob("*.yaml")):
        header = config.read_text().split("\n")[1]  # "#   resnet18, vt_resnet18, ..."
        pairs += [(config.name, model.strip()) for model in header.lstrip("# ").split(",")]
    return pairs


@pytest.mark.parametrize(("config", "model"), paper_configs())
def test_paper_configs_parse_for_every_model_of_their_table(
    config: str, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task, aliases, flag = ("segmentation", SEG, "--model") if config in ("lip.yaml", "cocostuff.yaml") else (
        "classification", CLS, "--backbone")
    argv = ["--config", str(REPO / "experiments" / "configs" / config), flag, model, "--data-dir", "/data"]
    with pytest.raises(SystemExit):
        main(task, aliases, [*argv, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["name"] == model and printed["data"]["init_args"]["root"] == "/data"
