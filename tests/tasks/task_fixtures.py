"""Tiny fits for the task tests: 32×32 synthetic shapes, a handful of batches, CPU."""

from __future__ import annotations

from typing import Any

import lightning as L

from vt.data import SyntheticDataModule

NUM_CLASSES = 4
BATCH_SIZE = 4


def tiny_data(**overrides: Any) -> SyntheticDataModule:
    """Synthetic shapes at 32×32: 4 classes, 4 training batches of 4, 2 validation batches."""
    args: dict[str, Any] = dict(
        image_size=32, batch_size=BATCH_SIZE, num_train=16, num_val=8, num_classes=NUM_CLASSES
    )
    return SyntheticDataModule(**(args | overrides))


def tiny_trainer(**overrides: Any) -> L.Trainer:
    """A quiet CPU trainer without loggers or checkpoints unless asked."""
    args: dict[str, Any] = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )
    return L.Trainer(**(args | overrides))

