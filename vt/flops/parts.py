"""The parts of a network that VT changes, as modules of positional tensors.

fvcore's tracer and ``torch.compile`` want tensors in and tensors out; these wrappers give the
VT stage of a classifier and the necks of a segmenter that shape, so `vt.flops` counts and
``benchmarks/throughput.py`` times exactly the same computation.
"""

from __future__ import annotations

from torch import Tensor, nn


class TokensOnly(nn.Module):
    """A VT stage as the classifier runs it: tokens out, last projector skipped (method §3).

    ``x: (B, C, H, W)`` -> ``tokens: (B, L, C_T)``.
    """

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, x: Tensor) -> Tensor:
        return self.stage(x, project_last=False).tokens


class NeckOnMaps(nn.Module):
    """An FPN or VT-FPN neck with the backbone's maps as positional tensors and a tuple out.

    ``maps``: one ``(B, C_i, H_i, W_i)`` per ``names`` (the neck's ``in_features``, finest
    first) -> one ``(B, C, H_i, W_i)`` per pyramid level.
    """

    def __init__(self, neck: nn.Module) -> None:
        super().__init__()
        self.neck = neck
        self.names = [f.name for f in neck.in_features]

    def forward(self, *maps: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.neck(dict(zip(self.names, maps))).values())


class NeckRefinement(nn.Module):
    """The part of a neck VT replaces (method §4): FPN's 3×3 convolutions or VT-FPN's VT modules.

    ``merged``: the top-down pathway's maps ``(B, C, H_i, W_i)`` -> the refined maps, same shapes.
    """

    def __init__(self, neck: nn.Module) -> None:
        super().__init__()
        self.neck = neck

    def forward(self, *merged: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.neck.refine(list(merged)))
