"""benchmarks/accuracy.py: the t interval, model specs, seeds, and a tiny two-model, two-seed run."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from benchmark_scripts import benchmark_script



@pytest.fixture(scope="module")
def acc() -> Iterator[ModuleType]:
    with benchmark_script("accuracy") as module:
        yield module


pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    "--image-size", "32", "--num-classes", "3", "--num-train", "32", "--num-val", "16",
    "--epochs", "1", "--batch-size", "16", "--accelerator", "cpu",
]


def test_t_interval_by_hand(acc: ModuleType) -> None:
    mean, half = acc.t_interval([1.0, 2.0, 3.0])  # sd 1, t_{0.975,2} = 4.303
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1 / math.sqrt(3), rel=1e-3)
    mean, half = acc.t_interval([0.5, 0.7])  # sd sqrt(0.02), t_{0.975,1} = 12.706
    assert half == pytest.approx(12.706 * math.sqrt(0.02) / math.sqrt(2), rel=1e-3)
    assert math.isnan(acc.t_interval([0.4])[1])


def test_t_quantile_beyond_the_table(acc: ModuleType) -> None:
    # Textbook values: df 40 -> 2.021, df 120 -> 1.980, and z = 1.960 in the limit.
    assert acc.t_quantile_975(40) == pytest.approx(2.021, abs=1e-3)
    assert acc.t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)
    assert acc.t_quantile_975(10**6) == pytest.approx(1.960, abs=1e-3)
    assert acc.t_quantile_975(30) > acc.t_quantile_975(31) > acc.t_quantile_975(32)


def test_parse_model_spec(acc: ModuleType) -> None:
    spec = acc.parse_model_spec("vt_resnet18:num_tokens=32,literal_tokenizer=true,tokenizer=filter")
    assert spec.label == "vt_resnet18:num_tokens=32,literal_tokenizer=true,tokenizer=filter"
    assert spec.name == "vt_resnet18"
    assert spec.options == {"num_tokens": 32, "literal_tokenizer": True, "tokenizer": "filter"}
    assert acc.parse_model_spec("resnet18") == acc.ModelSpec("resnet18", "resnet18", {})
    assert acc.parse_model_spec("resnet18:dropout=0.1").options == {"dropout": 0.1}
    # The objective's knob goes to the task, the rest to the builder.
    spec = acc.parse_model_spec("vt_resnet18:token_diversity=1,num_tokens=8")
    assert spec.options == {"num_tokens": 8} and spec.task_options == {"token_diversity": 1}


def test_a_task_option_the_model_cannot_take_fails_before_training(
    acc: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert acc.main(["--models", "resnet18:token_diversity=1", "--num-train", "8", "--num-val", "8", "--batch-size", "4"]) == 2
    assert "token_diversity needs a model with visual tokens; resnet18 has none" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resnet19", "unknown classifier"),
        ("fpn_resnet50", "unknown classifier"),  # a segmenter is not a classifier
        ("vt_resnet18:num_tokens", "not key=value"),
        ("vt_resnet18:num_tokens=4,num_tokens=8", "given twice"),
        ("vt_resnet18:token_diversity=1,token_diversity=0", "given twice"),
        ("resnet18:num_tokens=4", "does not take 'num_tokens'"),
        ("resnet18:num_classes=4", "comes from the data"),
    ],
)
def test_parse_model_spec_errors(acc: ModuleType, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        acc.parse_model_spec(text)


def test_summarise_rows_intervals_and_paired_difference(acc: ModuleType) -> None:
    def run(model: str, seed: int, top1: float) -> dict[str, object]:
        return {"model": model, "seed": seed, "top1": top1, "images_per_sec": 100.0 + seed,
                "image_size": 64, "gflops": 0.25, "mparams": 11.0}

    results = [run(m, s, v + s / 10) for s in (0, 1, 2) for m, v in (("resnet18", 0.5), ("vt_resnet18", 0.6))]
    table = acc.summarise(results)
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0][:4] == ["| model", "val top-1 %", "per seed (0, 1, 2)", "Δ top-1 vs resnet18 (paired)"]
    # resnet18: 50, 60, 70 % -> 60 ± 4.303 * 10 / sqrt(3) = 60.0 ± 24.8.
    assert rows[1][:4] == ["| resnet18", "60.0 ± 24.8", "50.0, 60.0, 70.0", "—"]
    # vt_resnet18 is 10 points better at every seed: the paired interval has no width.
    assert rows[2][:4] == ["| vt_resnet18", "70.0 ± 24.8", "60.0, 70.0, 80.0", "+10.0 ± 0.0"]
    assert rows[2][4:] == ["0.250", "11.00", "101", "— |"]


def test_summarise_reports_the_last_modules_token_diversity(acc: ModuleType) -> None:
    def run(seed: int, cosine: float) -> dict[str, object]:
        tokens = {"attention_cosine": cosine, "distinct_argmax": 8.0 + seed, "token_cosine": 0.5,
                  "effective_rank": 3.0, "num_tokens": 16, "num_maps": 16, "num_pixels": 49}
        return {"model": "vt_resnet18", "seed": seed, "top1": 0.5, "images_per_sec": 1.0, "image_size": 112,
                "gflops": 0.4, "mparams": 11.0, "tokens": [dict(tokens, attention_cosine=0.9), tokens]}

    row = acc.summarise([run(0, 0.2), run(1, 0.4)]).splitlines()[2]
    assert row.endswith("| 0.30 / 8.5 of 16 (49 px) / 0.50 |")


def test_bad_spec_is_a_one_line_usage_error(acc: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        acc.main(["--models", "resnet18", "resnet19"])
    assert exit_.value.code == 2
    assert "unknown classifier 'resnet19'" in capsys.readouterr().err


def test_training_seed_changes_the_order_not_the_data(acc: ModuleType) -> None:
    args, _, _ = acc.parse_args(["--models", "resnet18", *TINY])
    a, b = acc.make_datamodule(args, 0), acc.make_datamodule(args, 1)
    for split in ("train_set", "val_set"):
        assert torch.equal(getattr(a, split).load(3)["image"], getattr(b, split).load(3)["image"])
    order = [[key.index for key in dm.train_dataloader().sampler] for dm in (a, b)]
    assert sorted(order[0]) == sorted(order[1]) and order[0] != order[1]
    # The same training seed gives the same order (model A and model B of one seed).
    assert [k.index for k in acc.make_datamodule(args, 1).train_dataloader().sampler] == order[1]


def test_two_models_two_seeds_end_to_end(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = ["resnet18", "vt_resnet18:token_channels=64,num_tokens=4"]
    out = tmp_path / "runs.json"
    assert acc.main(["--models", *models, "--seeds", "2", *TINY, "--json", str(out)]) == 0
    printed = capsys.readouterr()

    rows = [line for line in printed.out.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == models
    assert "GFLOPs @ 32px" in printed.out
    assert len([line for line in printed.err.splitlines() if line.startswith("[")]) == 4  # progress

    runs = json.loads(out.read_text())["runs"]
    assert sorted((r["model"], r["seed"]) for r in runs) == sorted((m, s) for m in models for s in (0, 1))
    # Interleaved by seed: every model at seed 0 before any at seed 1.
    assert [r["seed"] for r in runs] == [0, 0, 1, 1]
    for r in runs:
        assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["top5"] <= 1.0
        assert r["steps"] == 2 and r["seconds"] > 0
        assert r["images_per_sec"] is not None and r["images_per_sec"] > 0
        assert r["gflops"] > 0 and r["mparams"] > 0
    vt = [r for r in runs if r["model"] == models[1]]
    assert vt[0]["options"] == {"token_channels": 64, "num_tokens": 4}
    # VT runs report each module's token diversity (two modules, four tokens each); ResNets none.
    assert [len(r["tokens"]) for r in vt] == [2, 2] and vt[0]["tokens"][1]["num_tokens"] == 4
    assert all("tokens" not in r for r in runs if r["model"] == models[0])
    # Seeds differ in initialisation and order. Top-1 on 16 images may tie between seeds; the
    # validation loss of a differently trained model does not.
    per_seed: dict[str, list[float]] = {m: [r["top1"] for r in runs if r["model"] == m] for m in models}
    assert all(len(v) == 2 for v in per_seed.values())
    for m in models:
        losses = [r["val_loss"] for r in runs if r["model"] == m]
        assert losses[0] != pytest.approx(losses[1], rel=1e-6)
    # The table's per-seed cells are the JSON's values, in percent.
    first = rows[0].split(" | ")[2]
    assert first == ", ".join(f"{100 * v:.1f}" for v in per_seed[models[0]])


def _saved(path: Path, runs: list[tuple[str, int, float]], **config: object) -> Path:
    setting = {"data": "synthetic", "image_size": 64, "epochs": 4, "recipe": "synthetic", "num_classes": 10} | config
    path.write_text(json.dumps({"config": setting, "runs": [
        {"model": m, "seed": s, "top1": v, "images_per_sec": 10.0, "image_size": 64, "gflops": 0.2, "mparams": 11.0}
        for m, s, v in runs
    ]}))
    return path


def test_merge_tables_the_seeds_of_several_files(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _saved(tmp_path / "a.json", [("resnet18", 0, 0.5), ("vt_resnet18", 0, 0.6)])
    later = _saved(tmp_path / "b.json", [("resnet18", 1, 0.7), ("vt_resnet18", 1, 0.9)], precision="32-true")
    assert acc.main(["--merge", str(first), str(later), "--models", "vt_resnet18", "resnet18"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    # The order asked for; per-seed values from both files; the paired difference over both seeds.
    assert [r[0] for r in rows] == ["| vt_resnet18", "| resnet18"]
    assert rows[0][2] == "60.0, 90.0" and rows[1][2] == "50.0, 70.0"
    assert rows[1][3] == "-15.0 ± 63.5"  # differences -10 and -20: 12.706 * 7.07 / sqrt(2)


@pytest.mark.parametrize(("second", "message"), [
    (dict(runs=[("resnet18", 0, 0.4)]), "seed 0 of resnet18 is in the merged files twice"),
    (dict(runs=[("resnet18", 1, 0.4)], image_size=112), "trained differently from .*image_size: 64 vs 112"),
    (dict(runs=[("resnet18", 1, 0.4)], precision="bf16-mixed"), "precision: '32-true' vs 'bf16-mixed'"),
])
def test_merge_refuses_runs_that_do_not_belong_together(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], second: dict, message: str
) -> None:
    first = _saved(tmp_path / "a.json", [("resnet18", 0, 0.5)])
    other = _saved(tmp_path / "b.json", **second)
    assert acc.main(["--merge", str(first), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "is not a file written by benchmarks/accuracy.py --json"),
    ("[1, 2]", "is not a file written by benchmarks/accuracy.py --json"),
    ('{"config": {}, "runs": []}', "holds no runs"),
])
def test_merge_of_a_file_that_is_not_a_harness_result_is_a_one_line_error(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert acc.main(["--merge", str(_saved(tmp_path / "a.json", [("resnet18", 0, 0.5)])), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and message in err


def test_merge_takes_a_spec_that_repeats_a_default_as_the_same_model(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _saved(tmp_path / "a.json", [("vt_resnet18:queries=both,token_diversity=0.0", 0, 0.5)])
    later = _saved(tmp_path / "b.json", [("vt_resnet18", 1, 0.7), ("vt_resnet18:queries=tokens", 1, 0.6)])
    assert acc.main(["--merge", str(first), str(later), "--models", "vt_resnet18:num_tokens=16"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [(r[0], r[2]) for r in rows] == [("| vt_resnet18", "50.0, 70.0")]
    assert acc.canonical_label("vt_resnet18", {"queries": "tokens", "num_tokens": 16}, {"token_diversity": 1}) == (
        "vt_resnet18:queries=tokens,token_diversity=1")


def test_json_path_is_checked_before_any_training(
    acc: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert acc.main(["--models", "resnet18", "--seeds", "1", *TINY, "--json", str(blocker / "runs.json")]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"error: --json {blocker / 'runs.json'} cannot be written") and "[1/1]" not in printed.err


def test_label_set_builds_the_pair_task_and_is_part_of_the_recipe(acc: ModuleType) -> None:
    args, _, _ = acc.parse_args(["--models", "resnet18", *TINY, "--objects", "2", "--num-classes", "4",
                                 "--label", "set"])
    dm = acc.make_datamodule(args, 0)
    assert (dm.num_classes, dm.label, dm.objects) == (6, "set", 2)
    assert "label" in acc.SAME_RECIPE
