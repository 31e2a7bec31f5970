"""The base every `vt` datamodule shares: errors, datasets, dataloaders, bad samples.

A batch is a dict of tensors:

- ``"image"``: float32 ``(B, 3, H, W)``, normalised with the ImageNet mean and std;
- ``"label"``: int64 ``(B,)``, the image-level class;
- ``"mask"``: int64 ``(B, H, W)``, the per-pixel class, ``IGNORE_INDEX`` (255) where unlabeled or padded.

A datamodule includes the keys its dataset has (``has_labels``).

Training is reproducible across a resume: see `vt.data.sampling`.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from typing import Any, Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from vt.data.sampling import EpochDataLoader, EpochSampler, SampleKey, SkipCounter

IGNORE_INDEX = 255
RECIPES = ("standard", "advanced")

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A one-line, user-facing data problem: what is wrong, the expected layout, and the fix."""


class BadSampleError(DatasetError):
    """One sample cannot be used (unreadable image, bad mask); the message names its path."""


def check_recipe(recipe: str) -> None:
    """Raises the one-line `DatasetError` for a data-augmentation recipe not in `RECIPES`."""
    if recipe not in RECIPES:
        raise DatasetError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")


def check_min_crop_area(area: float, flag: str = "min_crop_area") -> None:
    """Raises the one-line `DatasetError`, naming ``flag``, unless ``area`` is in (0, 1].

    ``area``: the smallest random-resized crop, as a fraction of the image's area.
    """
    if not 0 < area <= 1:
        raise DatasetError(f"{flag} must be in (0, 1], got {area}; 0.08 is ImageNet's")


# What each loss target is, for the message of `check_task_data`.
_TARGETS = {"label": "image-level class labels", "mask": "per-pixel label masks"}


def check_task_data(class_path: str, target_key: str, task: str, choices: dict[str, type]) -> None:
    """Raises the one-line `DatasetError` when the datamodule ``class_path`` lacks ``target_key``.

    Looked up on the class (``has_labels``), before anything is built, so that ``cls.py --data
    lip`` fails at once, naming the ``choices`` (name -> datamodule class) that fit ``task``. A
    class that only knows its labels once built is not checked here.
    """
    module, _, name = class_path.rpartition(".")
    try:
        labels = getattr(getattr(importlib.import_module(module), name), "has_labels", None)
    except (ImportError, AttributeError, ValueError):  # the parser reports an unknown class itself
        return
    if not isinstance(labels, frozenset) or target_key in labels:
        return
    fitting = [key for key, cls in choices.items() if target_key in getattr(cls, "has_labels", {target_key})]
    raise DatasetError(
        f"{task} trains on {_TARGETS.get(target_key, target_key)} ({target_key!r}), which {name} does "
        f"not have (it has {', '.join(sorted(labels))}); use --data {' or '.join(fitting)}"
    )


def check_layout(ok: bool, dataset: str, root: str, problem: str, layout: str, fix: str) -> None:
    """Raises the one-line `DatasetError` for a root not in ``layout`` unless ``ok``."""
    if not ok:
        raise DatasetError(f"{dataset} root {root!r}: {problem}. Expected layout: {layout}. Fix: {fix}.")


class VTDataset(Dataset[Sample], ABC):
    """A map-style dataset of dict samples whose files may be bad: fail fast, or skip and count.

    ``load`` decodes one sample; ``transform`` (a callable on the sample dict) augments it.
    Indexed by a `SampleKey`, the transform draws from torch's generator seeded with the key's
    seed (and the caller's random state is left as it was); indexed by an int, it draws from the
    current random state. With ``skip_bad``, a bad sample is replaced by the next readable one
    (in index order), so batches keep their size, and ``skip_counter`` records each replacement.
    """

    # How a loader batches the samples: torch's default stacking, unless a dataset's samples differ in size.
    collate_fn: Callable[[list[Sample]], Sample] | None = None

    def __init__(self, transform: Transform | None = None, skip_bad: bool = False) -> None:
        self.transform = transform
        self.skip_bad = skip_bad
        self.skip_counter: SkipCounter | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Sample:
        """The untransformed sample ``index``; raises `BadSampleError` naming the bad file."""

    def __getitem__(self, key: int | SampleKey) -> Sample:
        index, seed = key if isinstance(key, SampleKey) else (key, None)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        for attempt in range(len(self)):
            try:
                sample = self.load((index + attempt) % len(self))
            except BadSampleError as err:
                if not self.skip_bad:
                    raise
                log.warning("skipping bad sample: %s", err)
                if self.skip_counter is not None:
                    self.skip_counter.add()
                continue
            return self._augment(sample, seed)
        raise DatasetError(f"every one of the {len(self)} samples is unreadable; check the dataset files")

    def _augment(self, sample: Sample, seed: int | None) -> Sample:
        if self.transform is None:
            return sample
        if seed is None:
            return self.transform(sample)
        # Only the CPU generator: the transforms run on CPU, and CUDA's state belongs to the model.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.transform(sample)


class SkipReport(L.Callback):
    """Says after each training epoch (its validation included) how many bad samples were skipped.

    Each skip is logged as it happens, by the worker that met it; this adds the count of the epoch
    and of the run, on one line, and logs the run's count as the metric ``data/skipped`` (under
    DDP each process counts its own shard; the metric is the first process's). A
    `VTDataModule` with ``skip_bad`` adds it to the trainer that sets it up.
    """

    def __init__(self, datamodule: VTDataModule) -> None:
        self.datamodule = datamodule
        self.reported = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = self.datamodule.num_skipped
        new, self.reported = total - self.reported, total
        pl_module.log("data/skipped", float(total), on_epoch=True, rank_zero_only=True)  # no collective
        if new:
            log.warning(
                "skipped %d unreadable samples in epoch %d (listed above); %d in this run so far",
                new, trainer.current_epoch, total,
            )


class VTDataModule(L.LightningDataModule, ABC):
    """The shared base of every `vt` datamodule: splits, dataloaders, class counts.

    Subclasses set ``num_classes``, ``num_seg_classes``, ``class_names`` (one per image class),
    ``seg_class_names`` (one per mask class; empty without masks) and ``has_labels`` in
    ``__init__`` or as class attributes (so a model can be sized, and its checkpoint name its outputs, before ``setup``)
    and build their splits in ``make_dataset``. Nothing ever downloads: ``prepare_data`` does nothing.

    The training loader shuffles with an `EpochSampler`: the order of an epoch, and the
    augmentation of each sample, are functions of ``seed`` and the epoch alone, so a run resumed
    from an end-of-epoch checkpoint trains on exactly the batches the uninterrupted run would have.
    (From a mid-epoch checkpoint Lightning restarts the epoch's loader at its first batch, and warns.)

    Args:
        image_size: side of the square training crop, and of evaluation images.
        batch_size: samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        recipe: classification augmentation, ``"standard"`` or ``"advanced"`` (method §6).
        skip_bad: skip (and count, see ``num_skipped``) unreadable samples instead of raising.
        seed: seeds the training shuffle order and augmentation (and, for generated data, the data).
    """

    ignore_index: int = IGNORE_INDEX
    num_classes: int
    num_seg_classes: int
    class_names: list[str]
    seg_class_names: list[str]
    has_labels: frozenset[str]

    def __init__(
        self,
        image_size: int,
        batch_size: int,
        num_workers: int,
        recipe: str,
        skip_bad: bool,
        seed: int,
    ) -> None:
        super().__init__()
        check_recipe(recipe)
        for name, value, least in (
            ("image_size", image_size, 1),
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
        ):
            if value < least:
                raise DatasetError(f"{name} must be at least {least}, got {value}")
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.recipe = recipe
        self.skip_bad = skip_bad
        self.seed = seed
        self.train_set: VTDataset | None = None
        self.val_set: VTDataset | None = None
        self._skip_counter = SkipCounter(num_workers)

    @abstractmethod
    def make_dataset(self, split: str) -> VTDataset:
        """The ``"train"`` or ``"val"`` split, with its transforms; raises `DatasetError`."""

    def setup(self, stage: str | None = None) -> None:
        """Builds the splits ``stage`` needs, once: fit needs both, the others only val.

        With ``skip_bad``, a trainer fitting this datamodule gets a `SkipReport`.
        """
        trainer = self.trainer
        if self.skip_bad and trainer is not None and not any(isinstance(c, SkipReport) for c in trainer.callbacks):
            trainer.callbacks.append(SkipReport(self))
        if stage in (None, "fit") and self.train_set is None:
            train_set = self.make_dataset("train")
            if len(train_set) < self.batch_size:
                raise DatasetError(
                    f"the train split has {len(train_set)} samples, fewer than "
                    f"batch_size={self.batch_size}, so no full batch exists; lower --data.batch_size"
                )
            train_set.skip_counter = self._skip_counter
            self.train_set = train_set
        if self.val_set is None:
            val_set = self.make_dataset("val")
            if len(val_set) == 0:
                raise DatasetError("the val split has no samples; check the dataset root and its val files")
            val_set.skip_counter = self._skip_counter
            self.val_set = val_set

    def drop_missing(self, missing: list[str], what: str) -> None:
        """Fails on ``missing`` files found while listing a split, or, with ``skip_bad``, counts them."""
        if not missing:
            return
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        message = f"{len(missing)} {what} missing: {listed}"
        if not self.skip_bad:
            raise DatasetError(
                f"{message}; restore them, or pass --data.skip_bad true (skip_bad=True in Python) to skip those samples"
            )
        log.warning("skipping samples: %s", message)
        self._skip_counter.counts[0] += len(missing)

    @property
    def num_skipped(self) -> int:
        """Bad samples skipped so far (with ``skip_bad=True``), summed over all workers.

        Missing files count once, when the split is listed; an unreadable file counts each time
        it is drawn (once per epoch). Reported after every epoch by `SkipReport`.
        """
        return self._skip_counter.total

    def _loader(self, dataset: VTDataset | None, train: bool) -> DataLoader[Sample]:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return (EpochDataLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=self._train_sampler(dataset) if train else None,
            # A last batch of one sample would break BatchNorm in training.
            drop_last=train,
            num_workers=self.num_workers,
            # Pinned memory only speeds up copies to a GPU; a CPU run (even on a GPU machine) skips it.
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
            persistent_workers=self.num_workers > 0,
            collate_fn=dataset.collate_fn,
            # Worker seeds come from here rather than from the global generator, whose state (the
            # model's dropout, restored from a checkpoint) a new loader must not shift.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _train_sampler(self, dataset: VTDataset) -> EpochSampler:
        """The training sampler: this process's shard when the trainer runs several (DDP)."""
        trainer = self.trainer
        shard = (trainer.distributed_sampler_kwargs if trainer is not None else None) or {}
        return EpochSampler(dataset, self.seed, shard.get("num_replicas", 1), shard.get("rank", 0))

    def train_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader[Sample]:
        """The val split: none of the real datasets publishes test labels."""
        return self._loader(self.val_set, train=False)
