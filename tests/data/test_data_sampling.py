"""The training order and augmentation: functions of (seed, epoch), whoever loads them."""

from __future__ import annotations

import torch

from vt.data import SyntheticDataModule
from vt.data.base import EpochSampler


def _loader(epoch: int, **overrides: object) -> torch.utils.data.DataLoader:
    args = {"image_size": 16, "batch_size": 4, "num_train": 8, "num_val": 4, "num_classes": 4, "recipe": "advanced"}
    datamodule = SyntheticDataModule(**(args | overrides))  # type: ignore[arg-type]
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return loader


def _images(loader: torch.utils.data.DataLoader) -> torch.Tensor:
    return torch.cat([batch["image"] for batch in loader])


def test_training_order_is_a_function_of_seed_and_epoch() -> None:
    assert torch.equal(_images(_loader(3)), _images(_loader(3)))


def test_training_order_changes_with_the_epoch() -> None:
    assert not torch.equal(_images(_loader(0)), _images(_loader(1)))


def test_augmentation_is_the_same_in_workers_as_in_the_main_process() -> None:
    assert torch.equal(_images(_loader(1, num_workers=0)), _images(_loader(1, num_workers=2)))


def test_augmentation_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    _images(_loader(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_first_batch_follows_an_epoch_set_after_the_iterator_exists() -> None:
    # Lightning creates the first iterator of a fit before it calls set_epoch.
    loader = _loader(0, num_workers=2)
    batches = iter(loader)
    loader.sampler.set_epoch(2)
    assert torch.equal(next(batches)["image"], next(iter(_loader(2)))["image"])


def test_shards_of_an_epoch_are_disjoint_and_cover_the_split() -> None:
    shards = [EpochSampler(range(10), seed=0, num_replicas=2, rank=rank) for rank in (0, 1)]
    for shard in shards:
        shard.set_epoch(1)
    indices = [[key.index for key in shard] for shard in shards]
    assert len(indices[0]) == len(indices[1]) == 5 and sorted(indices[0] + indices[1]) == list(range(10))
