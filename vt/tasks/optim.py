"""RMSProp as TensorFlow computes it, for the advanced recipe (method §6).

The recipe (paper Table 8) descends from the MnasNet/EfficientNet TPU recipes, written for TF1's
``tf.train.RMSPropOptimizer``. Its update differs from ``torch.optim.RMSprop`` in three ways that a
choice of ``eps`` cannot hide: epsilon sits inside the square root, the mean square starts at one
(not zero, so the first steps are not divided by a tiny root), and the learning rate is folded into
the momentum buffer (so a change of rate affects only the steps after it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class RMSpropTF(torch.optim.Optimizer):
    """TF1's ``tf.train.RMSPropOptimizer`` (not centered), with L2 weight decay added to the gradient.

    Per parameter ``p`` with gradient ``g``, each step::

        g   = g + weight_decay * p                          # L2 penalty, as the TF recipes' loss term
        ms  = rho * ms + (1 - rho) * g**2                   # ms starts at 1
        mom = momentum * mom + lr * g / sqrt(ms + eps)      # mom starts at 0
        p   = p - mom

    Weight decay enters the gradient, hence also the mean square, as TensorFlow's
    ``weight_decay * l2_loss`` in the loss does (timm's ``RMSpropTF(decoupled_decay=False)``).
    Defaults are TensorFlow's. State per parameter: ``ms`` and ``mom``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        rho: float = 0.9,
        momentum: float = 0.0,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
    ) -> None:
        for name, value in (("lr", lr), ("rho", rho), ("momentum", momentum), ("eps", eps),
                            ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"RMSpropTF {name} must be non-negative, got {value}")
        defaults = dict(lr=lr, rho=rho, momentum=momentum, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p] = {"ms": torch.ones_like(p), "mom": torch.zeros_like(p)}
            ms = [self.state[p]["ms"] for p in params]
            mom = [self.state[p]["mom"] for p in params]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            # ms += (1 - rho) * (g**2 - ms): TensorFlow's kernel form of the mean square's update.
            torch._foreach_lerp_(ms, torch._foreach_mul(grads, grads), 1 - group["rho"])
            root = torch._foreach_sqrt(torch._foreach_add(ms, group["eps"]))
            torch._foreach_mul_(mom, group["momentum"])
            torch._foreach_addcdiv_(mom, grads, root, value=group["lr"])
            torch._foreach_sub_(params, mom)
        return loss


def from_torch_rmsprop(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer ``state_dict`` of ``torch.optim.RMSprop`` (not centered), as `RMSpropTF`'s.

    Checkpoints of the advanced recipe written before `RMSpropTF` hold torch's state: ``eps`` was
    TensorFlow's epsilon's square root (outside the root), ``square_avg`` started at 0 (TensorFlow's
    ``ms`` is the same average plus ``alpha ** step``, exactly) and ``momentum_buffer`` holds steps
    without the learning rate (``mom`` is it times the current rate: the nearest TensorFlow state,
    as those steps also placed epsilon differently). Anything else (another optimizer's state, or
    `RMSpropTF`'s) is returned unchanged.
    """
    groups = state["param_groups"]
    if not groups or "alpha" not in groups[0]:
        return state
    new_groups, new_state = [], {}
    for group in groups:
        kept = {k: group[k] for k in ("params", "lr", "momentum", "weight_decay", "initial_lr") if k in group}
        new_groups.append({**kept, "rho": group["alpha"], "eps": group["eps"] ** 2})
        for index in group["params"]:
            old = state["state"].get(index)
            if old is None:
                continue
            new_state[index] = {
                "ms": old["square_avg"] + group["alpha"] ** float(old["step"]),
                "mom": group["lr"] * old.get("momentum_buffer", torch.zeros_like(old["square_avg"])),
            }
    return {"state": new_state, "param_groups": new_groups}
