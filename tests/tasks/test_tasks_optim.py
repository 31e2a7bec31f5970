"""RMSpropTF against TensorFlow's update rule, written out in numpy; old torch RMSprop states."""

import math

import numpy as np
import pytest
import torch

from vt.tasks.optim import RMSpropTF, from_torch_rmsprop

SHAPES = [(3, 4), (5,)]
STEPS = 5


def tf_rmsprop(
    params: list[np.ndarray], grads: list[list[np.ndarray]], lr: float, rho: float, momentum: float, eps: float,
    weight_decay: float,
) -> list[np.ndarray]:
    """TF1 ``tf.train.RMSPropOptimizer`` (ms starts at 1), L2 decay added to each gradient, in float64."""
    params = [p.astype(np.float64) for p in params]
    ms = [np.ones_like(p) for p in params]
    mom = [np.zeros_like(p) for p in params]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = g + weight_decay * params[i]
            ms[i] = rho * ms[i] + (1 - rho) * g**2
            mom[i] = momentum * mom[i] + lr * g / np.sqrt(ms[i] + eps)
            params[i] = params[i] - mom[i]
    return params


def run_rmsprop_tf(params: list[np.ndarray], grads: list[list[np.ndarray]], **hyper: float) -> list[np.ndarray]:
    tensors = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    optimizer = RMSpropTF(tensors, **hyper)
    for step_grads in grads:
        for p, g in zip(tensors, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
    return [p.detach().numpy() for p in tensors]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_rmsprop_tf_follows_tensorflows_update(momentum: float, weight_decay: float) -> None:
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(np.float32) for shape in SHAPES] for _ in range(STEPS)]
    hyper = dict(lr=0.1, rho=0.9, momentum=momentum, eps=1e-3, weight_decay=weight_decay)
    actual = run_rmsprop_tf(params, grads, **hyper)
    expected = tf_rmsprop(params, grads, **hyper)
    assert all(np.allclose(a, e, rtol=0, atol=1e-6) for a, e in zip(actual, expected))


def test_torch_rmsprop_state_converts_to_tensorflows_mean_square() -> None:
    # After n steps torch's square_avg (from 0) plus alpha**n is TensorFlow's ms (from 1), exactly.
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(4))
    optimizer = torch.optim.RMSprop([param], lr=0.1, alpha=0.9, eps=math.sqrt(1e-3), momentum=0.9)
    grads = [torch.randn(4) for _ in range(STEPS)]
    for g in grads:
        param.grad = g
        optimizer.step()
    ms = torch.ones(4)
    for g in grads:
        ms = 0.9 * ms + 0.1 * g**2
    converted = from_torch_rmsprop(optimizer.state_dict())
    assert torch.allclose(converted["state"][0]["ms"], ms, rtol=0, atol=1e-6)


def test_torch_rmsprop_momentum_converts_with_the_learning_rate_folded_in() -> None:
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.RMSprop([param], lr=0.1, alpha=0.9, eps=math.sqrt(1e-3), momentum=0.9)
    param.grad = torch.ones(2)
    optimizer.step()
    converted = from_torch_rmsprop(optimizer.state_dict())
    assert torch.equal(converted["state"][0]["mom"], 0.1 * optimizer.state[param]["momentum_buffer"])


def test_converted_torch_rmsprop_state_loads_into_rmsprop_tf() -> None:
    param = torch.nn.Parameter(torch.ones(2))
    old = torch.optim.RMSprop([param], lr=0.1, alpha=0.9, eps=math.sqrt(1e-3), momentum=0.9)
    param.grad = torch.ones(2)
    old.step()
    new = RMSpropTF([param], lr=0.1)
    new.load_state_dict(from_torch_rmsprop(old.state_dict()))
    group = new.param_groups[0]
    assert (group["rho"], group["eps"], group["momentum"]) == (0.9, pytest.approx(1e-3), 0.9)


def test_rmsprop_tf_state_is_left_as_it_is() -> None:
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = RMSpropTF([param], lr=0.1)
    param.grad = torch.ones(2)
    optimizer.step()
    state = optimizer.state_dict()
    assert from_torch_rmsprop(state) is state
