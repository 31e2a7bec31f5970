"""Small layers shared by the VT blocks."""

from __future__ import annotations

from torch import Tensor, nn


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: drop the whole branch per sample while training.

    The advanced recipe (spec §6) keeps each branch with probability ``1 - p`` (0.9); surviving
    branches are scaled by ``1/(1-p)`` so the expected output matches evaluation.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, ...)`` -> same shape."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
