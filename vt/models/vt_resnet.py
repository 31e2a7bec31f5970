"""VT-ResNets (method §3): a ResNet whose last stage is a stack of VT modules.

A VT-ResNet keeps torchvision's stem and stages 1-3 (the paper's stages 1-4) and replaces the last
stage by as many VT modules as it had residual blocks, working on the stride-16 map; the head
average-pools the last module's tokens and classifies them with one linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv

from vt.models.features import check_input
from vt.models.registry import check_positive, config_options, register_model
from vt.models.resnet import ARCH, LEVELS, check_level, timm_feature_info, trunk_features
from vt.models.trunk import pop_trunk_options, setup_trunk
from vt.nn import VisualTransformer, VTOutput, map_overlap
from vt.nn.tokenizer import QueryKind, SoftmaxAxis


@dataclass(frozen=True)
class VTOptions:
    """The settings every VT module of a paper VT-ResNet shares (method §2, §5.1 ablations, §8).

    The classification command line's ``--model.vt`` group: ``--model.vt.num_tokens 32``.

    Args:
        num_tokens: L, visual tokens per module (method §5.1 ablates 16, 32 and 64).
        token_channels: C_T, channels of a token.
        tokenizer: tokenizer of the modules after the first: "recurrent" (method §2.2), "filter"
            (§2.1 in every module; ablation) or "pooling" (every module pools; ablation).
        literal_tokenizer: the recurrent tokenizer exactly as Eq. 3-4 (method §8).
        queries: what the recurrent queries are made of: "tokens" (Eq. 3), "centred" (the tokens
            minus their mean over L) or "both" (default; distinct tokens, method §8).
        softmax_over: the tokenizers' softmax axis: "pixels" (Eq. 1, 4; default) or "tokens"
            (tokens compete for pixels: trained maps stay apart, at a cost in accuracy on our
            synthetic tasks; method §8).
        relation: "transformer" (Eq. 5-6) or "none" (ablation: tokens pass unchanged).
        projector: project the tokens back onto the map (Eq. 7; off: ablation).
        heads: transformer attention heads.
        value_proj: a C_T×C_T value projection in the transformer.
        projector_heads: projector attention heads.
        norm: LayerNorm in the transformer, BatchNorm on the projector's added branch.
    """

    num_tokens: int = 16
    token_channels: int = 1024
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent"
    literal_tokenizer: bool = False
    queries: QueryKind = "both"
    softmax_over: SoftmaxAxis = "pixels"
    relation: Literal["transformer", "none"] = "transformer"
    projector: bool = True
    heads: int = 1
    value_proj: bool = False
    projector_heads: int = 1
    norm: bool = True

    def __post_init__(self) -> None:
        check_positive(self, ("num_tokens", "token_channels", "heads", "projector_heads"))


@dataclass(frozen=True, kw_only=True)
class VTStageConfig(VTOptions):
    """Everything that defines a VT stage: the shared :class:`VTOptions` and the per-depth widths.

    ``modules`` VT modules work on the map; the first uses a filter tokenizer (or the pooling one
    when ``tokenizer == "pooling"``), the later ones ``tokenizer``. The first module's projector
    writes ``out_channels``. ``last_projector`` decides whether the last module has a projector.
    A classifier reads only the last module's tokens, so it never runs that projector (dead
    compute); a dense task reading the stage's map (``forward_levels``) does. See
    :class:`vt.nn.VisualTransformer` for the other fields.
    """

    modules: int
    in_channels: int
    out_channels: int
    qk_channels: int | None = None
    ffn_channels: int | None = None
    recurrent_tokens: int | None = None
    last_projector: bool = False
    projector_qk_channels: int | None = None
    projector_groups: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("qk_channels", "ffn_channels", "recurrent_tokens", "projector_qk_channels",
                              "projector_groups"))
        if self.tokenizer == "recurrent" and (self.recurrent_tokens or 0) > self.num_tokens:
            raise ValueError(
                f"recurrent_tokens must be in 1..num_tokens={self.num_tokens}, got {self.recurrent_tokens}; "
                f"set it with --model.options '{{recurrent_tokens: {self.num_tokens}}}'"
            )


class VTStageOutput(NamedTuple):
    """What a :class:`VTStage` returns: its last module's map and tokens, every module's attention.

    features: ``(B, C_out, H, W)``; tokens: ``(B, L, C_T)``; attention: with
    ``return_attention=True``, one :attr:`VTOutput.attention` dict per module, first to last;
    otherwise ``None``.
    """

    features: Tensor
    tokens: Tensor
    attention: list[dict[str, Tensor]] | None = None


class VTStage(nn.Module):
    """A stack of VT modules replacing a ResNet stage: ``x: (B, C_in, H, W)`` -> :class:`VTStageOutput`."""

    def __init__(self, cfg: VTStageConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        blocks = []
        channels = cfg.in_channels
        for i in range(cfg.modules):
            last = i == cfg.modules - 1
            has_projector = cfg.projector and (cfg.last_projector or not last)
            out = cfg.out_channels if has_projector else channels
            if i == 0:
                kind = "pooling" if cfg.tokenizer == "pooling" else "filter"
            else:
                kind = cfg.tokenizer
            blocks.append(
                VisualTransformer(
                    channels, cfg.num_tokens, cfg.token_channels, out_channels=out, tokenizer=kind,
                    recurrent_tokens=cfg.recurrent_tokens if kind == "recurrent" else None,
                    literal_tokenizer=cfg.literal_tokenizer, queries=cfg.queries,
                    softmax_over=cfg.softmax_over,
                    relation=cfg.relation, projector=has_projector, qk_channels=cfg.qk_channels,
                    ffn_channels=cfg.ffn_channels, heads=cfg.heads, value_proj=cfg.value_proj,
                    projector_qk_channels=cfg.projector_qk_channels,
                    projector_groups=cfg.projector_groups, projector_heads=cfg.projector_heads,
                    norm=cfg.norm, drop_path=drop_path,
                )
            )
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = channels

    def forward_modules(
        self, x: Tensor, return_attention: bool = False, project_last: bool = True
    ) -> list[VTOutput]:
        """Every module's :class:`VTOutput`, first to last (what token analyses read).

        ``project_last=False`` skips the last module's projector (for token-only readers).
        """
        outputs: list[VTOutput] = []
        tokens: Tensor | None = None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            out = block(x, tokens, return_attention, project=project_last or i < last)
            x, tokens = out.features, out.tokens
            outputs.append(out)
        return outputs

    def forward(self, x: Tensor, return_attention: bool = False, project_last: bool = True) -> VTStageOutput:
        """The last module's map and tokens, and (if asked) every module's attention."""
        outputs = self.forward_modules(x, return_attention, project_last)
        maps = [out.attention for out in outputs if out.attention is not None] if return_attention else None
        return VTStageOutput(outputs[-1].features, outputs[-1].tokens, maps)


class VTResNet(nn.Module):
    """ResNet stem + stages 1-3 from torchvision, a :class:`VTStage`, a token-pooling linear head.

    The head averages the last module's tokens, LayerNorms the average and applies one linear layer
    (the paper: pool, then a fully connected layer). The LayerNorm is ours (method §2.5): the tokens
    are the unnormalised residual stream of a pre-norm transformer, and pre-norm models read it
    through a final norm (ViT, GPT-2); without it the logits' scale follows the trunk's activations,
    and full-width VT-ResNets trained with AdamW on the synthetic shapes stalled above chance loss
    where ResNet-34 did not. Cost: ``2 C_T`` parameters.

    Attribute names of the trunk (``conv1``..``layer3``) match torchvision's, so a torchvision
    ResNet checkpoint loads into it directly (the builders' ``trunk_weights``, :mod:`vt.models.trunk`).

    In timm's vocabulary (see :mod:`vt.models.resnet`) the final representation is the last
    module's tokens, as a ViT's: ``forward_features(x)`` gives them, ``forward_head`` pools them.
    """

    min_input_size = 16  # the VT stage works on the H/16 map; it needs at least one pixel

    def __init__(
        self, depth: int, stage: VTStageConfig, /, num_classes: int = 1000, dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        block, layers = ARCH[depth]
        trunk = tv.ResNet(block, layers[:3] + [1])
        self.name = f"vt_resnet{depth}"
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3 = trunk.layer1, trunk.layer2, trunk.layer3
        c4 = 256 * block.expansion
        if stage.in_channels != c4:
            raise ValueError(f"a VT stage on resnet{depth} takes {c4} channels, got {stage.in_channels}")
        self.layer4 = VTStage(stage, drop_path)
        self.head_norm = nn.LayerNorm(stage.token_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(stage.token_channels, num_classes)
        self.num_classes = num_classes
        self.level_info = trunk_features(depth, self.layer4.out_channels, 16)
        self.feature_info = timm_feature_info(self.level_info)

    def forward_levels(self, x: Tensor, last: str = "c5") -> dict[str, Tensor]:
        """``x: (B, 3, H, W)`` -> ``{"c2": (B, C2, H/4, W/4), ..., "c5": (B, C5, H/16, W/16)}``.

        Stops after ``last``: the levels above it are neither computed nor returned.
        """
        check_level(last)
        levels = self._trunk(x, last)
        if last == "c5":
            levels["c5"] = self.layer4(levels["c4"]).features
        return levels

    def _trunk(self, x: Tensor, last: str = "c4") -> dict[str, Tensor]:
        """C2..C4 of ``x``, or up to ``last``."""
        check_input(x, self.min_input_size, self.name, self.conv1.weight.dtype)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        levels: dict[str, Tensor] = {}
        for name, stage in zip(LEVELS, (self.layer1, self.layer2, self.layer3)):
            x = levels[name] = stage(x)
            if name == last:
                break
        return levels

    def forward_tokens(
        self, x: Tensor, return_attention: bool = False, project_last: bool = False
    ) -> VTStageOutput:
        """``x: (B, 3, H, W)`` -> the VT stage's :class:`VTStageOutput` (tokens ``(B, L, C_T)``).

        The last projector only matters for the map, so it is skipped unless ``project_last``.
        """
        return self.layer4(self._trunk(x)["c4"], return_attention, project_last)

    def forward_modules(
        self, x: Tensor, return_attention: bool = False, project_last: bool = False
    ) -> list[VTOutput]:
        """``x: (B, 3, H, W)`` -> one :class:`VTOutput` per VT module (tokens ``(B, L, C_T)`` each)."""
        return self.layer4.forward_modules(self._trunk(x)["c4"], return_attention, project_last)

    def forward_features(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> the last module's tokens ``(B, L, C_T)``, unpooled (timm's meaning)."""
        return self.forward_tokens(x).tokens

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        """``tokens: (B, L, C_T)`` -> logits ``(B, num_classes)``, or the normed mean token ``(B, C_T)``."""
        x = self.head_norm(tokens.mean(dim=1))
        return x if pre_logits else self.fc(self.dropout(x))

    def forward(self, x: Tensor, return_map_overlap: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``.

        With ``return_map_overlap`` also the mean over the VT modules of how alike their tokens'
        spatial maps are (`vt.nn.map_overlap`, a differentiable scalar; 0 where no tokenizer has
        maps): the term ``ClassificationTask(token_diversity=...)`` adds to the loss (method §8).
        A keyword of ``forward`` rather than another method, so the training step still goes
        through the module's hooks and its compiled call.
        """
        if not return_map_overlap:
            return self.forward_head(self.forward_features(x))
        outputs = self.forward_modules(x, return_attention=True)
        overlaps = [map_overlap(out.attention["tokenizer"]) for out in outputs if "tokenizer" in out.attention]
        overlap = torch.stack(overlaps).mean() if overlaps else x.new_zeros(())
        return self.forward_head(outputs[-1].tokens), overlap


# The paper's VT stages (method §3): the per-depth widths, found by counting with fvcore among the
# knobs the paper and its earlier arXiv versions describe (method §5.4); every other setting is
# VTOptions' default. R50 and R101 share one stage, as in the paper (C = C_T = 1024, L = 16, ×3).
_SMALL_STAGE = dict(in_channels=256, out_channels=512, qk_channels=512, ffn_channels=512, last_projector=True)
_LARGE_STAGE = dict(
    in_channels=1024, out_channels=1024, qk_channels=512, ffn_channels=512, projector_groups=16,
    recurrent_tokens=8, last_projector=True,
)
PAPER_STAGES: dict[int, VTStageConfig] = {
    18: VTStageConfig(modules=2, **_SMALL_STAGE),
    34: VTStageConfig(modules=3, **_SMALL_STAGE),
    50: VTStageConfig(modules=3, **_LARGE_STAGE),
    101: VTStageConfig(modules=3, **_LARGE_STAGE),
}

# The paper's second VT-R34 configuration (Table 8) is a different stage: projector queries/keys
# C/2 wide with 16-group pixel queries, and no last projector.
# ``create_model("vt_resnet34", **VT_RESNET34_TABLE8)`` builds it.
VT_RESNET34_TABLE8: dict[str, object] = dict(
    projector_qk_channels=128, projector_groups=16, last_projector=False
)

_TRUNK_FIELDS = ("modules", "in_channels")  # fixed by the depth
STAGE_OPTIONS = frozenset(f.name for f in fields(VTStageConfig)) - set(_TRUNK_FIELDS)


def _vt_resnet(depth: int, **kwargs: Any) -> VTResNet:
    """``vt_resnet{depth}``: ``PAPER_STAGES[depth]`` with the stage options in ``kwargs`` replaced.

    The trunk options (:func:`vt.models.trunk.setup_trunk`) fill and freeze the ResNet trunk.
    """
    stage = {k: kwargs.pop(k) for k in list(kwargs) if k in STAGE_OPTIONS}
    trunk = pop_trunk_options(kwargs)
    model = VTResNet(depth, replace(PAPER_STAGES[depth], **stage), **kwargs)
    return setup_trunk(model, f"resnet{depth}", **trunk)


def _registered(depth: int) -> Any:
    """Registers a VT-ResNet builder: VTResNet's arguments, the trunk's, then its stage's options and values."""
    options = config_options(PAPER_STAGES[depth], exclude=_TRUNK_FIELDS)
    return register_model(base=(VTResNet, setup_trunk), options=options, group="VT stage")


# Builders. ``tokenizer``, ``relation``, ``projector``, ``num_tokens`` are the ablation switches of
# method §5.1; any :class:`VTStageConfig` field but the depth's ``modules`` and ``in_channels`` can
# be overridden. `python experiments/flops.py` prints how close each comes to the paper's FLOPs
# and params (Table 2 and Table 8 rows, method §5.1).


@_registered(18)
def vt_resnet18(**kwargs: Any) -> VTResNet:
    """VT-ResNet-18: ``VT-C512-L16-CT1024 ×2`` on ResNet-18's 14×14, 256-channel map.

    Stage: keys/queries C_T/2, FFN hidden C_T/2, projector queries/keys C×C (dense), the first
    projector widens the map to 512 channels, the last module's projector is built (it serves
    ``forward_levels``) but skipped by the classifier.
    """
    return _vt_resnet(18, **kwargs)


@_registered(34)
def vt_resnet34(**kwargs: Any) -> VTResNet:
    """VT-ResNet-34: ``VT-C512-L16-CT1024 ×3``, the same module design as VT-ResNet-18.

    ``**VT_RESNET34_TABLE8`` gives the paper's Table 8 configuration.
    """
    return _vt_resnet(34, **kwargs)


@_registered(50)
def vt_resnet50(**kwargs: Any) -> VTResNet:
    """VT-ResNet-50: ``VT-C1024-L16-CT1024 ×3`` on ResNet-50's 14×14, 1024-channel map.

    Literal equations at C = C_T (no width projection), keys/queries C_T/2, FFN hidden C_T/2,
    projector query convolution in 16 groups, recurrent tokenizer recomputing half of the tokens,
    last projector built but skipped by the classifier. The same stage as VT-ResNet-101; its FLOPs
    are the tight row of the paper's table (method §5.4).
    """
    return _vt_resnet(50, **kwargs)


@_registered(101)
def vt_resnet101(**kwargs: Any) -> VTResNet:
    """VT-ResNet-101: the VT-ResNet-50 stage on ResNet-101's trunk.

    The paper's R50 and R101 rows disagree on the parameters of this one stage (method §5.4).
    """
    return _vt_resnet(101, **kwargs)
