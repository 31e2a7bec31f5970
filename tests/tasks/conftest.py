"""Every task test runs on one intra-op thread."""

import pytest


@pytest.fixture(autouse=True)
def _every_task_test_on_one_thread(one_thread: None) -> None:
    """`one_thread` (tests/conftest.py) for each test of this folder."""
