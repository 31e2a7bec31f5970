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
    ema.update_parameters(model)  # first update: decay min(0.5, 1/10) = 0.1
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.update_parameters(model)  # then min(0.5, 2/11) = 2/11
    assert ema.module.weight.item() == pytest.approx(0.9 + (1 - 0.9) * 9 / 11)


def test_ema_matches_the_hand_computed_average_of_weights_and_batchnorm_statistics() -> None:
    # w_ema = d_n * w_ema + (1 - d_n) * w after update n (from 0), d_n = min(decay, (1 + n) / (10 + n)),
    # starting from the initial weights; float buffers (BatchNorm statistics) are averaged alike.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.2)
    expected = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    for n in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(5, 3))  # moves the running statistics
        ema.update_parameters(model)
        d = min(0.2, (1 + n) / (10 + n))
        expected = {k: d * v + (1 - d) * model.state_dict()[k] for k, v in expected.items()}
    averaged = ema.module.state_dict()
    assert all(torch.allclose(averaged[k], v, rtol=0, atol=1e-6) for k, v in expected.items())


def test_ema_copies_integer_buffers() -> None:
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.9)
    model(torch.randn(4, 2))
    ema.update_parameters(model)
    assert int(ema.module.num_batches_tracked) == 1


def test_ema_counts_the_initial_weights_as_an_averaged_model() -> None:
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.9)
    ema.update_parameters(model)
    assert int(ema.n_averaged) == 2


def test_ema_weights_are_not_trained() -> None:
    ema = EMA(nn.Linear(2, 2), decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())
