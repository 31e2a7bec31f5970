"""The pyramid necks of the segmenters, FPN and VT-FPN, and their semantic head (method §4).

    ResNet C2..C5 -> neck (FPN or VT-FPN) -> P2..P5 -> semantic head -> logits

Both necks share the lateral 1×1 convolutions and the top-down pathway, one constructor
signature ``(in_features, out_channels, ...)`` and one output contract (``feature_info``: ``p2``..
``p5``, ``out_channels`` each, strides 4..32), so the head cannot tell them apart. They differ only
in how the merged maps are refined: FPN runs a 3×3 convolution per level; VT-FPN extracts 8 tokens
per level, relates the tokens of **all** levels in one transformer and projects each level's tokens
back onto its map. The head is Detectron2's semantic FPN branch (panoptic FPN). The segmenters
that assemble backbone, neck and head are in :mod:`vt.models.segmenter`.

Any input size works, with no padding: every upsampling (top-down, head) targets the exact size of
the finer map it is added to, so odd sizes (473 -> 119, 60, 30, 15) align.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vt.models.features import FeatureInfo
from vt.models.registry import check_positive
from vt.nn import FilterTokenizer, Projector, TokenTransformer
from vt.nn.tokenizer import SoftmaxAxis

PYRAMID_CHANNELS = 256  # every pyramid level's width (Detectron2's FPN, the paper)
HEAD_CHANNELS = 128  # the semantic head's towers (Detectron2, the paper)


class PyramidNeck(nn.Module, abc.ABC):
    """Lateral 1×1 convolutions and the top-down pathway; subclasses refine the merged maps.

    Args:
        in_features: the backbone levels used (e.g. C2..C5), any order; strides must double
            from one level to the next.
        out_channels: channels of every output level.

    ``feature_info`` lists the outputs, finest first: ``p{log2 stride}``, ``out_channels``, stride.
    """

    def __init__(self, in_features: list[FeatureInfo], out_channels: int = PYRAMID_CHANNELS) -> None:
        super().__init__()
        self.in_features = sorted(in_features, key=lambda f: f.stride)
        strides = [f.stride for f in self.in_features]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"pyramid levels must double in stride, got {strides}")
        self.lateral = nn.ModuleList(nn.Conv2d(f.channels, out_channels, 1) for f in self.in_features)
        self.feature_info = [
            FeatureInfo(f"p{int(math.log2(f.stride))}", out_channels, f.stride) for f in self.in_features
        ]
        for conv in self.lateral:
            _c2_xavier_fill(conv)

    def merge(self, features: dict[str, Tensor]) -> list[Tensor]:
        """Laterals plus the top-down pathway: ``P_i = lateral(C_i) + upsample(P_{i+1})``.

        Returns the merged maps finest first, ``(B, out_channels, H/s, W/s)`` each.
        """
        merged = [lateral(features[f.name]) for lateral, f in zip(self.lateral, self.in_features)]
        for i in range(len(merged) - 2, -1, -1):  # coarse to fine
            merged[i] = merged[i] + F.interpolate(merged[i + 1], size=merged[i].shape[-2:], mode="nearest")
        return merged

    @abc.abstractmethod
    def refine(self, maps: list[Tensor]) -> list[Tensor]:
        """The per-level refinement that distinguishes the necks; maps finest first."""

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"c2": (B, C2, H/4, W/4), ...}`` -> ``{"p2": (B, out_channels, H/4, W/4), ...}``."""
        return {info.name: p for info, p in zip(self.feature_info, self.refine(self.merge(features)))}


class FPN(PyramidNeck):
    """Feature Pyramid Network (Lin et al. 2017; Detectron2's, without the P6 max-pool level).

    A 3×3 convolution per level after the top-down sum.
    """

    def __init__(self, in_features: list[FeatureInfo], out_channels: int = PYRAMID_CHANNELS) -> None:
        super().__init__(in_features, out_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in self.in_features
        )
        for conv in self.output:
            _c2_xavier_fill(conv)

    def refine(self, maps: list[Tensor]) -> list[Tensor]:
        """Each level through its own 3×3 convolution."""
        return [conv(p) for conv, p in zip(self.output, maps)]


@dataclass(frozen=True)
class VTFPNConfig:
    """The VT-FPN neck's settings (method §4); the defaults are the paper's model.

    The segmentation command line's ``--model.neck`` group: ``--model.neck.num_tokens 16``.

    The defaults keep every width the paper states (L = 8, C_T = 1024, Eq. 7's C×C query shape)
    and slim only what its FLOP budget forces (see :class:`VTFPN`); `python experiments/flops.py
    --task seg` prints how close they come.

    Args:
        num_tokens: L, tokens per level.
        token_channels: C_T.
        qk_channels: transformer key/query width.
        ffn_channels: transformer MLP hidden width.
        heads: transformer heads.
        projector_qk_channels: projector query/key width (default the pyramid width, Eq. 7's C).
        projector_groups: groups of the projector's pixel-side query convolution.
        projector_heads: projector heads.
        norm: LayerNorm in the transformer, BatchNorm on the projector's added branch.
        softmax_over: the tokenizers' softmax axis, "pixels" (Eq. 1) or "tokens" (a level's L
            tokens compete for its pixels; :mod:`vt.nn.tokenizer`, method §8). Same FLOPs.
    """

    num_tokens: int = 8
    token_channels: int = 1024
    qk_channels: int = 128
    ffn_channels: int = 128
    heads: int = 1
    projector_qk_channels: int | None = None
    projector_groups: int = 32
    projector_heads: int = 1
    norm: bool = True
    softmax_over: SoftmaxAxis = "pixels"

    def __post_init__(self) -> None:
        check_positive(self, ("num_tokens", "token_channels", "qk_channels", "ffn_channels", "heads",
                              "projector_qk_channels", "projector_groups", "projector_heads"))


class VTFPN(PyramidNeck):
    """VT-FPN (method §4): FPN's 3×3 convolutions replaced by tokens and one cross-level transformer.

    Per level, a :class:`~vt.nn.FilterTokenizer` extracts ``num_tokens`` tokens of
    ``token_channels``; the tokens of all levels are concatenated and related by **one**
    :class:`~vt.nn.TokenTransformer`; each level's :class:`~vt.nn.Projector` then writes that
    level's output tokens (which now carry every level's information) back onto its map.

    Choices the paper leaves open, fixed by its FLOP budget for the whole neck (method §5.2), much
    of which the laterals alone spend:

    * laterals and the top-down pathway are kept (the paper replaces FPN's *convolutions*, and its
      budget leaves room for the 256-channel laterals and little else); the 3×3 convolutions go;
    * a level's projector reads that level's L tokens only: reading all 4·L would cost 4× the
      values and logits per pixel, over budget at every setting;
    * the projector keeps Eq. (7)'s C-wide queries and keys, with the pixel-side query convolution
      in ``projector_groups`` groups (the earlier arXiv versions' grouped pixel-side projections);
    * the transformer is slim, keys/queries and MLP hidden width C_T/8. The two input sizes pin the
      split: the paper's two budgets are a little closer to each other than the sizes' pixel
      counts, so the neck needs a fixed cost per pixel and little fixed token-side cost. With
      Eq. (5)-(6) at their literal widths (keys/queries C_T/2, MLP C_T) no projector setting fits
      both budgets: pixels cheap enough for 473×473 leave 800×1216 too far under its budget, and
      pixels dear enough for 800×1216 put 473×473 over it.

    No setting of these knobs that meets the paper's four figures has much slack on any of them;
    `python experiments/flops.py --task seg` prints how close the defaults come.

    Args:
        in_features, out_channels: as :class:`FPN`.
        options: the fields of :class:`VTFPNConfig` (its defaults for the others).
    """

    def __init__(
        self, in_features: list[FeatureInfo], out_channels: int = PYRAMID_CHANNELS, **options: Any
    ) -> None:
        super().__init__(in_features, out_channels)
        self.config = cfg = VTFPNConfig(**options)
        self.num_tokens = cfg.num_tokens
        self.tokenizers = nn.ModuleList(
            FilterTokenizer(out_channels, cfg.num_tokens, cfg.token_channels, softmax_over=cfg.softmax_over)
            for _ in self.in_features
        )
        self.transformer = TokenTransformer(
            cfg.token_channels, cfg.qk_channels, cfg.ffn_channels, cfg.heads, norm=cfg.norm
        )
        self.projectors = nn.ModuleList(
            Projector(
                out_channels, cfg.token_channels, qk_channels=cfg.projector_qk_channels,
                groups=cfg.projector_groups, heads=cfg.projector_heads, norm=cfg.norm,
            )
            for _ in self.in_features
        )

    def refine(self, maps: list[Tensor]) -> list[Tensor]:
        """Tokenize every level, one transformer over all tokens, project each level's back."""
        tokens = torch.cat([tok(p)[0] for tok, p in zip(self.tokenizers, maps)], dim=1)  # (B, 4L, C_T)
        tokens, _ = self.transformer(tokens)
        per_level = tokens.split(self.num_tokens, dim=1)  # level i's L tokens, (B, L, C_T) each
        return [proj(p, t)[0] for proj, p, t in zip(self.projectors, maps, per_level)]


class SemanticFPNHead(nn.Module):
    """Detectron2's semantic FPN head (the panoptic-FPN semantic branch).

    Per level of stride s: ``max(1, log2(s / common_stride))`` stages of 3×3 conv (no bias) +
    GroupNorm(32) + ReLU, each followed by a 2× bilinear upsampling while above ``common_stride``;
    the levels are summed at ``common_stride``, a 1×1 convolution classifies, and the logits are
    upsampled bilinearly to the input size.

    Args:
        in_features: the neck's ``feature_info``; strides must reach ``common_stride`` by halving.
        num_classes: output classes.
        channels: width of the towers (Detectron2 and the paper: 128).
        common_stride: stride at which the levels meet (4, the finest FPN level).
        norm_groups: GroupNorm groups.
    """

    def __init__(
        self,
        in_features: list[FeatureInfo],
        num_classes: int,
        channels: int = HEAD_CHANNELS,
        common_stride: int = 4,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        self.in_features = sorted(in_features, key=lambda f: f.stride)
        present = {f.stride for f in self.in_features}
        for f in self.in_features:
            missing = [s for s in self._targets(f.stride, common_stride) if s not in present]
            if f.stride < common_stride or missing:
                raise ValueError(f"level {f.name} (stride {f.stride}) cannot reach common_stride="
                                 f"{common_stride}: the head needs a level at every stride in between")
        self.common_stride = common_stride
        self.towers = nn.ModuleList()
        for f in self.in_features:
            depth = max(1, int(math.log2(f.stride // common_stride)))
            self.towers.append(nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(f.channels if k == 0 else channels, channels, 3, padding=1, bias=False),
                    nn.GroupNorm(norm_groups, channels),
                    nn.ReLU(inplace=True),
                )
                for k in range(depth)
            ))
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        for tower in self.towers:
            for stage in tower:
                nn.init.kaiming_normal_(stage[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    @staticmethod
    def _targets(stride: int, common_stride: int) -> list[int]:
        """Strides a level of ``stride`` is upsampled to, in order: s/2, s/4, ..., common_stride."""
        out = []
        while stride > common_stride:
            stride //= 2
            out.append(stride)
        return out

    def forward(self, features: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        """``features``: the neck's levels ``{"p2": (B, C, H/4, W/4), ...}``, ``size``: ``(H, W)``.

        Returns logits ``(B, num_classes, H, W)``.
        """
        sizes = {f.stride: features[f.name].shape[-2:] for f in self.in_features}
        out: Tensor | None = None
        for f, tower in zip(self.in_features, self.towers):
            x = features[f.name]
            targets = self._targets(f.stride, self.common_stride)
            for k, stage in enumerate(tower):
                x = stage(x)
                if k < len(targets):  # 2×, landing exactly on the finer level's size
                    x = F.interpolate(x, size=sizes[targets[k]], mode="bilinear", align_corners=False)
            out = x if out is None else out + x
        assert out is not None
        return F.interpolate(self.predictor(out), size=size, mode="bilinear", align_corners=False)


def _c2_xavier_fill(conv: nn.Conv2d) -> None:
    """Detectron2's FPN initialisation: Xavier-like uniform weights, zero bias."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)


NECKS: dict[str, type[PyramidNeck]] = {"fpn": FPN, "vtfpn": VTFPN}
