"""The training order and each sample's augmentation seed, reproducible across a resume.

The sample order is a function of ``(seed, epoch)`` (`EpochSampler`) and each sample's augmentation
a function of ``(seed, epoch, index)`` (`SampleKey`), so neither depends on the history of a random
generator that a restarted DataLoader would lose, nor on the number of workers. `SkipCounter`
counts the bad samples the DataLoader's workers skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

T = TypeVar("T")


class SkipCounter:
    """Counts skipped samples across DataLoader workers.

    Each process writes only its own slot of a shared-memory tensor (slot 0: the main process,
    slot ``i + 1``: worker ``i``), so no lock is needed, and the main process reads the sum.
    Across epochs the same bad sample is counted again each time it is drawn.
    """

    def __init__(self, num_workers: int) -> None:
        self.counts = torch.zeros(num_workers + 1, dtype=torch.int64).share_memory_()

    def add(self) -> None:
        info = get_worker_info()
        self.counts[0 if info is None else info.id + 1] += 1

    @property
    def total(self) -> int:
        return int(self.counts.sum())


class SampleKey(NamedTuple):
    """A sample to load (``index``) and the seed of its augmentation's random draws."""

    index: int
    seed: int


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s augmentation in ``epoch``: a hash of the three, in 64 bits.

    A hash rather than ``seed + epoch + index``, so that neighbouring epochs or samples never
    share draws.
    """
    entropy = [value & (2**64 - 1) for value in (seed, epoch, index)]  # SeedSequence wants them >= 0
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


class EpochSampler(DistributedSampler):  # type: ignore[type-arg]
    """The training order: a shuffle that depends only on ``(seed, epoch)``, sharded over processes.

    A resumed run builds a new DataLoader; an order computed from ``(seed, epoch)`` (and not taken
    from a generator's history) lets it see the batches the uninterrupted run saw. This is torch's
    `DistributedSampler` (its ``seed + epoch`` shuffle, its padding and its ``rank``-th shard of
    ``num_replicas``), yielding `SampleKey` s whose seeds fix each sample's augmentation: the same
    draws in any worker and after a resume. Lightning calls ``set_epoch`` before every epoch, and
    keeps a `DistributedSampler` as it is under DDP instead of wrapping it in its own; a training
    loop outside Lightning must call ``set_epoch`` itself, or every pass repeats epoch 0.
    """

    def __init__(self, dataset: Dataset[Any], seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        epoch = self.epoch  # the order below is this epoch's; a set_epoch mid-pass must not mix two
        for index in super().__iter__():
            yield SampleKey(index, augmentation_seed(self.seed, epoch, index))


class _DeferredIterator(Iterator[T]):
    """Starts the iterator ``start()`` returns at the first ``next``, not when created."""

    def __init__(self, start: Callable[[], Iterator[T]]) -> None:
        self._start = start
        self._iterator: Iterator[T] | None = None

    def __next__(self) -> T:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)


class EpochDataLoader(DataLoader[T]):
    """A DataLoader that draws its sampler's order at the first batch, after ``set_epoch``.

    Lightning creates the first training iterator of a fit before it calls ``set_epoch``, and a
    loader with workers asks its sampler for indices as soon as its iterator exists: a run
    resumed at epoch ``e`` would train on the order of the epoch it was saved in.
    """

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        return _DeferredIterator(super().__iter__)
