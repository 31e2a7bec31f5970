"""benchmarks/token_diversity.py --checkpoint: the token table of a trained model, from its checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from benchmark_scripts import benchmark_script

from vt.analysis import module_token_diversity
from vt.checkpoint import MODEL_PREFIX, write_checkpoint
from vt.data import SyntheticShapes
from vt.data.transforms import synthetic_eval
from vt.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def script() -> Iterator[ModuleType]:
    with benchmark_script("token_diversity") as module:
        yield module


def test_checkpoint_table_measures_the_saved_weights_on_synthetic_scenes(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(3)
    args = {"num_classes": 4}
    model = create_model("vt_resnet18", **args).eval()
    checkpoint = {"state_dict": {MODEL_PREFIX + k: v for k, v in model.state_dict().items()},
                  "datamodule_hyper_parameters": {"image_size": 64}}
    write_checkpoint(checkpoint, "vt_resnet18", args, ["disk", "square", "triangle", "star"])
    torch.save(checkpoint, tmp_path / "last.ckpt")

    script.main(["--checkpoint", str(tmp_path / "last.ckpt"), "--batch", "3", "--objects", "2"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| vt_resnet18 ")]

    scenes = SyntheticShapes(3, 64, 4, split="val", transform=synthetic_eval(), objects=2)
    with torch.no_grad():
        expected = module_token_diversity(model, torch.stack([scenes[i]["image"] for i in range(3)]))
    assert len(lines) == len(expected) == 2  # VT-ResNet-18: two VT modules
    for line, stats in zip(lines, expected):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[4]) == pytest.approx(stats.attention_cosine, abs=1e-3)
        assert cells[5].startswith(f"{stats.distinct_argmax:.1f} of 16 (16 px)")  # 64 px: a 4×4 map


def test_checkpoint_without_visual_tokens_is_a_one_line_error(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = create_model("resnet18", num_classes=4)
    checkpoint = {"state_dict": {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}}
    write_checkpoint(checkpoint, "resnet18", {"num_classes": 4}, None)
    torch.save(checkpoint, tmp_path / "resnet.ckpt")
    for path, message in ((tmp_path / "resnet.ckpt", "holds a resnet18, which has no VT modules"),
                          (tmp_path / "absent.ckpt", "absent.ckpt")):
        with pytest.raises(SystemExit) as stop:
            script.main(["--checkpoint", str(path)])
        assert str(stop.value.code).startswith("error: ") and message in str(stop.value.code)
        assert "\n" not in str(stop.value.code)
