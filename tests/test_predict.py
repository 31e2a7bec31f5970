"""`predict` (vt/predict.py): cls.py / seg.py predict and experiments/predict.py on the user's images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from vt.cli import main as cli_main
from vt.data import SyntheticDataModule
from vt.data.files import load_rgb
from vt.predict import collect_images, main
from vt.tasks import ClassificationTask, SegmentationTask

from test_cli import CLS, SEG


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def checkpoint(tmp_path: Path, task: str, name: str | None = None) -> Path:
    """A checkpoint of a tiny task trained one step on synthetic shapes (4 classes, 64x64)."""
    data = SyntheticDataModule(image_size=64, batch_size=4, num_train=8, num_val=4, num_classes=4)
    if task == "classification":
        options = {"token_channels": 32, "qk_channels": 16, "ffn_channels": 32} if name else None
        model = ClassificationTask(name=name or "resnet18", num_classes=4, batch_size=4, options=options)
    else:
        model = SegmentationTask(name="fpn_resnet50", num_classes=5, batch_size=4,
                                 options={"out_channels": 32, "head_channels": 32})
    trainer = L.Trainer(max_steps=1, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, data)
    path = tmp_path / f"{task}.ckpt"
    trainer.save_checkpoint(path)
    return path


def images(tmp_path: Path) -> list[Path]:
    """Images of several sizes and modes, two sharing a stem in different folders, two in one folder."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "deep").mkdir(parents=True)
    made = {
        root / "a" / "x.png": Image.new("RGB", (40, 30), "white"),
        root / "a" / "x.jpg": Image.new("L", (33, 71), 128),  # same stem, same folder
        root / "b" / "deep" / "x.png": Image.new("P", (90, 17)),  # same stem, another folder
        root / "b" / "sixteen.png": Image.fromarray(np.full((25, 52), 40000, dtype=np.uint16)),
    }
    for path, image in made.items():
        image.save(path)
    return list(made)


def test_output_names_keep_relative_paths_and_never_collide(tmp_path: Path) -> None:
    paths = images(tmp_path)
    items = collect_images([str(tmp_path / "photos")])
    names = {Path(p).relative_to(tmp_path / "photos").as_posix(): n for p, n in items}
    assert names == {"a/x.jpg": "a/x.jpg", "a/x.png": "a/x.png", "b/deep/x.png": "b/deep/x", "b/sixteen.png": "b/sixteen"}
    # files from two folders: named relative to their common folder
    two = collect_images([str(paths[0]), str(paths[2])])
    assert [n for _, n in two] == ["a/x", "b/deep/x"]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 30), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the camera was held upright
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert tuple(load_rgb(str(tmp_path / "rotated.jpg")).shape) == (3, 40, 30)


@pytest.mark.slow
def test_classifier_writes_top_k_by_name_for_every_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = checkpoint(tmp_path, "classification")
    paths = images(tmp_path)
    argv = ["predict", "--ckpt_path", str(ckpt), "photos", "--out-dir", "out", "--top-k", "3", "--batch-size", "3"]
    assert cli_main("classification", CLS, argv) == 0
    with open("out/predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert sorted(r["path"] for r in rows) == sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert all(r["class_1"] in ("disk", "square", "triangle", "star") for r in rows)
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) >= float(r["prob_3"]) for r in rows)
    predictions = json.loads(Path("out/predictions.json").read_text())
    assert len(predictions) == 4 and all(len(p["top_k"]) == 3 for p in predictions)
    assert capsys.readouterr().out.count("photos/") == 4


@pytest.mark.slow
def test_segmenter_writes_one_mask_per_input_at_its_size(tmp_path: Path) -> None:
    ckpt = checkpoint(tmp_path, "segmentation")
    paths = images(tmp_path)
    argv = ["predict", "--ckpt_path", str(ckpt), "photos", "--out-dir", "masks", "--overlay", "--batch-size", "2"]
    assert cli_main("segmentation", SEG, argv) == 0
    masks = {p.relative_to("masks").as_posix() for p in Path("masks").rglob("*.png") if ".overlay" not in p.name}
    assert masks == {"a/x.png.png", "a/x.jpg.png", "b/deep/x.png", "b/sixteen.png"}
    for source, mask in zip(paths, ["a/x.png.png", "a/x.jpg.png", "b/deep/x.png", "b/sixteen.png"]):
        written = Image.open(Path("masks") / mask)
        assert written.mode == "L" and written.size == Image.open(source).size
        assert int(np.asarray(written).max()) < 5  # class ids of the 5 mask classes
    assert Image.open("masks/b/deep/x.overlay.png").size == (90, 17)


@pytest.mark.slow
def test_vt_classifier_draws_token_attention(tmp_path: Path) -> None:
    ckpt = checkpoint(tmp_path, "classification", "vt_resnet18")
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "blue.png")
    assert main(["--checkpoint", str(ckpt), "blue.png", "--out-dir", "out", "--attention"]) == 0
    assert Image.open("out/blue.attention.png").size[0] > 100


@pytest.mark.parametrize(("argv", "message"), [
    (["--out-dir", "afile"], "error: --out-dir afile is a file; pass a folder"),
    (["--top-k", "-1"], "error: --top-k must be at least 1, got -1"),
    (["--device", "cuda"], "error: --device cuda: no CUDA GPU is visible here; use --device cpu"),
    (["--inputs", "missing.jpg"], "error: no such image or folder: missing.jpg"),
    ([], "error: no images given"),
])
def test_bad_input_is_one_line(tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    Path("afile").write_text("")
    Image.new("RGB", (8, 8)).save("ok.png")
    images = [] if message.startswith("error: no images") or "--inputs" in argv else ["ok.png"]
    assert main(["--checkpoint", "none.ckpt", *images, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_missing_checkpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (8, 8)).save("ok.png")
    assert main(["--checkpoint", "none.ckpt", "ok.png"]) == 2
    assert capsys.readouterr().err == "error: --ckpt_path none.ckpt: no such checkpoint file\n"
