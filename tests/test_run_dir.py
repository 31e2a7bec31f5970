"""Where a run writes (vt/run_dir.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vt.run_dir import resolve_run_dir


def test_runs_started_together_get_separate_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second run chooses its directory before the first has written anything into its own.
    monkeypatch.chdir(tmp_path)
    first, second = (resolve_run_dir("cls", "resnet18", None, None, num_nodes=1) for _ in range(2))
    assert (Path(first).name, Path(second).name) == ("version_0", "version_1")


def test_version_taken_between_listing_and_creation_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mkdir = os.mkdir

    def racing_mkdir(path: os.PathLike[str] | str, *args: object) -> None:
        if Path(path).name == "version_0" and not Path(path).exists():
            mkdir(path)  # another run takes version_0 first
        mkdir(path, *args)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    assert Path(resolve_run_dir("cls", "resnet18", None, None, num_nodes=1)).name == "version_1"
