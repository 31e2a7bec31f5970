"""The notebooks run top to bottom in their fast mode, so they never rot; they are committed bare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel running this interpreter, whatever kernels the machine has registered."""
    spec = tmp_path / "jupyter" / "kernels" / "vt-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "vt", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))  # searched before any other kernel folder
    return "vt-test"


def run_fast(name: str, kernel: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executes ``notebooks/<name>`` in its fast mode, from its folder, writing its files to ``out``."""
    monkeypatch.setenv("VT_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("VT_NOTEBOOK_OUT", str(out))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell's traceback, on any error


@pytest.mark.slow
def test_token_ablation_notebook_trains_every_token_count(
    kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_fast("token_ablation.ipynb", kernel, tmp_path, monkeypatch)
    numbers = json.loads((tmp_path / "token_ablation.json").read_text())
    tokens = [r["num_tokens"] for r in numbers["models"]]
    assert tokens == [None, 2, 4, 8, 16, 32] and (tmp_path / "token_ablation.png").is_file()
    diversity = [r["token_diversity"] for r in numbers["models"]]
    assert diversity[0] is None and [d["num_tokens"] for d in diversity[1:]] == tokens[1:]


@pytest.mark.slow
def test_token_attention_notebook_measures_and_draws_attention(
    kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_fast("token_attention.ipynb", kernel, tmp_path, monkeypatch)
    numbers = json.loads((tmp_path / "token_attention.json").read_text())
    figures = ["token_attention.png", "vtfpn_attention.png", "vtfpn_segmentation.png", "vtfpn_token_relations.png"]
    assert len(numbers["vt_resnet"]) == 4 and len(numbers["vtfpn"]["levels"]) == 4
    diversity = numbers["token_diversity"]
    assert all(len(diversity[state]) == 2 for state in ("trained", "untrained"))
    assert [d["num_pixels"] for d in diversity["multi_object"]["trained"]] == [49, 49]  # the 7×7 map
    assert all((tmp_path / f).is_file() for f in figures)


@pytest.mark.parametrize("name", ["token_ablation.ipynb", "token_attention.ipynb"])
def test_notebook_is_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
