"""Bad inputs on the command line give one line, exit 2, and leave nothing behind (issue 14)."""

from __future__ import annotations

import logging
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "data"))
from data_fixtures import WNIDS, truncate, write_image  # noqa: E402

from vt.checkpoint import MODEL_KEY  # noqa: E402
from vt.cli import main  # noqa: E402
from vt.models import create_model  # noqa: E402

from test_cli import CLS, SEG, script  # noqa: E402

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY = [
    "--backbone", "resnet18", "--data.image_size", "32", "--data.num_train", "8", "--data.num_val", "4",
    "--data.batch_size", "4", "--data.num_classes", "4", "--trainer.max_epochs", "1", *QUIET,
]




pytestmark = pytest.mark.usefixtures("in_tmp_path")


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The run's stderr, which must be exactly one ``error:`` line."""
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


@pytest.fixture
def imagenet_with_a_truncated_jpeg(tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "inet"
    for label, wnid in enumerate(WNIDS[:2]):
        for i in range(2):
            write_image(root / "train" / wnid / f"{wnid}_{i}.JPEG", seed=10 * label + i)
        write_image(root / "val" / wnid / f"v{label}.JPEG", seed=100 + label)
    bad = root / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG"
    truncate(bad)
    return str(root), bad


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_error_names_the_file_and_the_fix(
    workers: int, imagenet_with_a_truncated_jpeg: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, bad = imagenet_with_a_truncated_jpeg
    argv = ["--backbone", "resnet18", "--data", "imagenet", "--data.root", root, "--data.image_size", "32",
            "--data.batch_size", "2", "--data.num_workers", str(workers), "--trainer.max_epochs", "1", *QUIET]
    assert main("classification", CLS, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: cannot read image {bad}: ") and "truncated" in err
    assert err.endswith("; fix or remove it, or pass --data.skip_bad true to skip unreadable samples")


@pytest.fixture
def resnet18_ckpt(tmp_path: Path) -> Path:
    """A vt training checkpoint of resnet18 with 4 classes (the weights, as Lightning nests them)."""
    model = create_model("resnet18", num_classes=4)
    path = tmp_path / "resnet18.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                MODEL_KEY: {"name": "resnet18", "args": {"num_classes": 4}, "class_names": None}}, path)
    return path


@pytest.mark.parametrize(
    ("kind", "backbone", "message"),
    [
        ("truncated", "resnet18", r"truncated\.ckpt cannot be read \(RuntimeError: "),
        ("text", "resnet18", r"text\.ckpt is not a PyTorch file \(it starts with b'.*'\); give a \.ckpt"),
        ("resnet18", "vt_resnet18", r"resnet18\.ckpt is of resnet18, not vt_resnet18: pass --model\.name resnet18"),
    ],
)
def test_resuming_a_bad_checkpoint_is_one_line(
    kind: str, backbone: str, message: str, resnet18_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = resnet18_ckpt
    if kind == "truncated":
        path = resnet18_ckpt.with_name("truncated.ckpt")
        path.write_bytes(resnet18_ckpt.read_bytes()[:4096])
    elif kind == "text":
        path = resnet18_ckpt.with_name("text.ckpt")
        path.write_text("not a checkpoint\n")
    argv = [*TINY, "--backbone", backbone, "--ckpt_path", str(path)]
    assert main("classification", CLS, argv) == 2
    assert re.search(message, _one_line_error(capsys))


@pytest.mark.parametrize(
    ("task", "aliases", "data", "message"),
    [
        ("classification", CLS, "lip", "classification trains on image-level class labels ('label'), which "
         "LIPDataModule does not have (it has image, mask); use --data synthetic or imagenet"),
        ("segmentation", SEG, "imagenet", "segmentation trains on per-pixel label masks ('mask'), which "
         "ImageNetDataModule does not have (it has image, label); use --data synthetic or lip or cocostuff"),
    ],
)
def test_dataset_without_the_tasks_labels_is_refused_before_anything_is_built(
    task: str, aliases: dict[str, str], data: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(task, aliases, ["--data", data, "--data.root", "/no/such/root", *QUIET]) == 2
    assert _one_line_error(capsys) == f"error: {message}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "imagnet"], "error: --data 'imagnet' is not a dataset; choose one of synthetic, imagenet, lip, "
         "cocostuff (or give a datamodule class path, or a YAML file)"),
        (["--trainer.devices", "0"], "error: `Trainer(devices='0')` value is not a valid input using cpu "
         "accelerator. Fix the --trainer.* option it names (see --help)."),
        (["--run_dir", "a_file"], "error: --run_dir a_file is a file; pass a directory (created if missing)"),
    ],
)
def test_bad_options_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path("a_file").write_text("")
    assert main("classification", CLS, [*TINY, *argv]) == 2
    assert _one_line_error(capsys) == message


def _warnings_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shows every warning on stderr, as a script does (pytest records them instead)."""
    monkeypatch.setattr(warnings, "filters", [])
    warnings.simplefilter("always")
    monkeypatch.setattr(
        warnings, "showwarning", lambda message, *args, **kwargs: print(f"warning: {message}", file=sys.stderr)
    )


def test_warnings_of_a_run_that_never_starts_are_not_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _warnings_to_stderr(monkeypatch)
    # --data imagenet keeps the quick demo's recipe, which warns; the missing root is the error.
    assert main("classification", CLS, ["--data", "imagenet", "--data.root", "/no/such/root", *QUIET]) == 2
    assert "ImageNet root '/no/such/root': no such directory" in _one_line_error(capsys)


def test_warnings_of_a_run_that_starts_are_still_shown(
    imagenet_with_a_truncated_jpeg: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _warnings_to_stderr(monkeypatch)
    root, _ = imagenet_with_a_truncated_jpeg  # the run is built, then fails on the bad image
    argv = ["--data", "imagenet", "--data.root", root, "--data.image_size", "32", "--data.batch_size", "2",
            "--data.num_workers", "0", "--trainer.max_epochs", "1", *QUIET]
    assert main("classification", CLS, argv) == 2
    assert "warning: --recipe synthetic is the quick demo's" in capsys.readouterr().err


def test_a_run_that_fails_before_training_leaves_no_version_folder(
    resnet18_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main("classification", CLS, [*TINY, "--backbone", "vt_resnet18", "--ckpt_path", str(resnet18_ckpt)]) == 2
    assert list(Path("runs").rglob("version_*")) == []


@pytest.mark.parametrize("size", ["0", "8"])
def test_flops_size_too_small_is_one_line(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert script("flops").main(["--size", size]) == 2  # type: ignore[attr-defined]
    assert _one_line_error(capsys) == (
        f"error: --size {size} is too small: the ResNets of the tables need at least 32 (their last map is "
        "H/32); the paper's is 224"
    )


def test_a_run_directory_another_process_trains_into_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resume started while the run still trains used to write the same last.ckpt as the run.
    import fcntl

    run = tmp_path / "busy"
    run.mkdir()
    with open(run / ".lock", "w") as other:  # another open file: flock treats it as another process
        other.write("process 4242 on node7, started 2026-11-29 10:00:00\n")
        other.flush()
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main("classification", CLS, [*TINY, "--run_dir", str(run)]) == 2
        err = _one_line_error(capsys)
        assert "run directory" in err and "process 4242 on node7" in err and "--run_dir" in err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written into it
    # Released (as when that process ends, however it ends), the directory trains.
    assert main("classification", CLS, [*TINY, "--run_dir", str(run)]) == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_new_run_dir_of_a_run_that_failed_before_training_is_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "never"
    assert main("classification", CLS, [*TINY, "--run_dir", str(run), "--data.image_size", "8"]) == 2
    assert not run.exists()


def test_an_unexpected_error_is_one_line_naming_its_type_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vt.data.synthetic import SyntheticDataModule

    def full_disk(self: object, stage: str | None = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SyntheticDataModule, "setup", full_disk)
    assert main("classification", CLS, TINY) == 1
    err = _one_line_error(capsys)
    assert err == "error: OSError: [Errno 28] No space left on device; rerun with VT_DEBUG=1 for the traceback"
    monkeypatch.setenv("VT_DEBUG", "1")
    with pytest.raises(OSError, match="No space left"):
        main("classification", CLS, TINY)


def test_data_listing_errors_come_before_any_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # An empty class folder is found when the split is listed; the --recipe synthetic warning and
    # Lightning's start-up lines used to print first.
    root = tmp_path / "inet"
    for wnid in WNIDS[:2]:
        write_image(root / "train" / wnid / f"{wnid}_0.JPEG", seed=1)
        write_image(root / "val" / wnid / f"{wnid}_v.JPEG", seed=2)
    (root / "train" / WNIDS[2]).mkdir()
    argv = ["--backbone", "resnet18", "--data", "imagenet", "--data.root", str(root), "--data.image_size", "32",
            "--data.batch_size", "1", "--data.num_workers", "0", "--trainer.max_epochs", "1", *QUIET]
    with warnings.catch_warnings(record=True) as warned, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        assert main("classification", CLS, argv) == 2
    out = capsys.readouterr()
    assert out.err.strip().startswith("error: ") and "holds no images" in out.err, out.err
    assert not [w for w in warned if "recipe synthetic" in str(w.message)]
    assert "GPU available" not in caplog.text  # the Trainer was not built yet
