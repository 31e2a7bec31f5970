import pytest
import torch
from torch import nn

from vt.tasks.ema import EMA


def test_ema_warms_up_then_averages_with_the_given_decay() -> None:
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # first update: decay min(0.5, 1/10) = 0.1
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.update(model)  # then min(0.5, 2/11) = 2/11
    assert ema.module.weight.item() == pytest.approx(0.9 + (1 - 0.9) * 9 / 11)


def test_ema_copies_integer_buffers() -> None:
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.9)
    model(torch.randn(4, 2))
    ema.update(model)
    assert int(ema.module.num_batches_tracked) == 1


def test_ema_weights_are_not_trained() -> None:
    ema = EMA(nn.Linear(2, 2), decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())
