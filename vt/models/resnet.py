"""ResNet baselines and VT-ResNets (spec §3).

The baselines are torchvision's ResNet, unchanged, plus a uniform C2..C5 feature interface. A
VT-ResNet keeps torchvision's stem and stages 1-3 (the paper's stages 1-4) and replaces the last
stage by as many VT modules as it had residual blocks, working on the stride-16 map; the head
average-pools the last module's tokens and classifies them with one linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv

from vt.models.features import FeatureInfo, check_input
from vt.models.registry import register_model
from vt.nn import VisualTransformer, VTOutput

Block = type[tv.BasicBlock] | type[tv.Bottleneck]

_ARCH: dict[int, tuple[Block, list[int]]] = {
    18: (tv.BasicBlock, [2, 2, 2, 2]),
    34: (tv.BasicBlock, [3, 4, 6, 3]),
    50: (tv.Bottleneck, [3, 4, 6, 3]),
    101: (tv.Bottleneck, [3, 4, 23, 3]),
}


class ResNet(tv.ResNet):
    """torchvision's ResNet with ``feature_info`` and ``forward_features`` (C2..C5)."""

    min_input_size = 32  # C5 is H/32

    def __init__(self, depth: int, num_classes: int = 1000, dropout: float = 0.0) -> None:
        block, layers = _ARCH[depth]
        super().__init__(block, layers, num_classes=num_classes)
        self.name = f"resnet{depth}"
        e = block.expansion
        self.feature_info = [
            FeatureInfo("c2", 64 * e, 4),
            FeatureInfo("c3", 128 * e, 8),
            FeatureInfo("c4", 256 * e, 16),
            FeatureInfo("c5", 512 * e, 32),
        ]
        if dropout > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), self.fc)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """``x: (B, 3, H, W)`` -> ``{"c2": (B, C2, H/4, W/4), ..., "c5": (B, C5, H/32, W/32)}``."""
        check_input(x, self.min_input_size, self.name)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": self.layer4(c4)}

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)["c5"]), 1))


@dataclass(frozen=True)
class VTStageConfig:
    """Everything that defines a VT stage; the named builders' defaults are the paper's models.

    ``modules`` VT modules work on the map; the first uses a filter tokenizer (or the pooling one
    when ``tokenizer == "pooling"``), the later ones ``tokenizer``. The first module's projector
    writes ``out_channels``. ``last_projector`` decides whether the last module has a projector.
    A classifier reads only the last module's tokens, so it never runs that projector (dead
    compute); a dense task reading the stage's map (``forward_features``) does. See
    :class:`vt.nn.VisualTransformer` for the other fields.
    """

    modules: int
    in_channels: int
    out_channels: int
    num_tokens: int = 16
    token_channels: int = 1024
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent"
    recurrent_tokens: int | None = None
    literal_tokenizer: bool = False
    center_tokens: bool = True
    relation: Literal["transformer", "none"] = "transformer"
    projector: bool = True
    last_projector: bool = False
    qk_channels: int | None = None
    ffn_channels: int | None = None
    heads: int = 1
    value_proj: bool = False
    projector_qk_channels: int | None = None
    projector_groups: int = 1
    projector_heads: int = 1
    norm: bool = True


class VTStage(nn.Module):
    """A stack of VT modules replacing a ResNet stage.

    ``x: (B, C_in, H, W)`` -> :class:`VTOutput` of the last module (``attention`` is a list with
    one dict per module when asked).
    """

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
                    literal_tokenizer=cfg.literal_tokenizer, center_tokens=cfg.center_tokens,
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

    def forward(self, x: Tensor, return_attention: bool = False, project_last: bool = True) -> VTOutput:
        """The last module's :class:`VTOutput`; its ``attention`` lists every module's dict."""
        outputs = self.forward_modules(x, return_attention, project_last)
        maps = [out.attention for out in outputs]
        return VTOutput(outputs[-1].features, outputs[-1].tokens, maps if return_attention else None)  # type: ignore[arg-type]


class VTResNet(nn.Module):
    """ResNet stem + stages 1-3 from torchvision, a :class:`VTStage`, a token-pooling linear head.

    The head averages the last module's tokens, LayerNorms the average and applies one linear layer
    (the paper: pool, then a fully connected layer). The LayerNorm is ours: the tokens are the
    unnormalised residual stream of a pre-norm transformer, and pre-norm models read it through a
    final norm (ViT, GPT-2). Without it the logits' scale follows the trunk's activations, and
    full-width VT-ResNet-18/34 trained with AdamW on the synthetic shapes sat at a training loss above
    chance (2.59 after 80 steps vs ln 10 = 2.30) where ResNet-34 reached 2.23; with it, 2.29
    (benchmark of the session that added it: 80 steps, batch 32, 64×64). Cost: ``2 C_T`` parameters.

    Attribute names of the trunk (``conv1``..``layer3``) match torchvision's, so a torchvision
    ResNet checkpoint loads into it directly.
    """

    min_input_size = 16  # the VT stage works on the H/16 map; it needs at least one pixel

    def __init__(
        self, depth: int, stage: VTStageConfig, num_classes: int = 1000, dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        block, layers = _ARCH[depth]
        trunk = tv.ResNet(block, layers[:3] + [1])
        self.name = f"vt_resnet{depth}"
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3 = trunk.layer1, trunk.layer2, trunk.layer3
        e = block.expansion
        if stage.in_channels != 256 * e:
            raise ValueError(f"a VT stage on resnet{depth} takes {256 * e} channels, got {stage.in_channels}")
        self.layer4 = VTStage(stage, drop_path)
        self.head_norm = nn.LayerNorm(stage.token_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(stage.token_channels, num_classes)
        self.feature_info = [
            FeatureInfo("c2", 64 * e, 4),
            FeatureInfo("c3", 128 * e, 8),
            FeatureInfo("c4", 256 * e, 16),
            FeatureInfo("c5", self.layer4.out_channels, 16),
        ]

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """``x: (B, 3, H, W)`` -> ``{"c2": (B, C2, H/4, W/4), ..., "c5": (B, C5, H/16, W/16)}``."""
        c2, c3, c4 = self._trunk(x)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": self.layer4(c4).features}

    def _trunk(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_input(x, self.min_input_size, self.name)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        return c2, c3, self.layer3(c3)

    def forward_tokens(self, x: Tensor, return_attention: bool = False, project_last: bool = False) -> VTOutput:
        """``x: (B, 3, H, W)`` -> the VT stage's :class:`VTOutput` (tokens ``(B, L, C_T)``).

        The last projector only matters for the map, so it is skipped unless ``project_last``.
        """
        return self.layer4(self._trunk(x)[2], return_attention, project_last)

    def forward_modules(
        self, x: Tensor, return_attention: bool = False, project_last: bool = False
    ) -> list[VTOutput]:
        """``x: (B, 3, H, W)`` -> one :class:`VTOutput` per VT module (tokens ``(B, L, C_T)`` each)."""
        return self.layer4.forward_modules(self._trunk(x)[2], return_attention, project_last)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        tokens = self.forward_tokens(x).tokens
        return self.fc(self.dropout(self.head_norm(tokens.mean(dim=1))))


# The paper's VT stages (spec §3), found by counting with fvcore among the knobs the paper and its
# earlier arXiv versions describe (spec §5.4); `python experiments/flops.py` prints what they reach.
# R50 and R101 share one stage, as in the paper (C = C_T = 1024, L = 16, ×3).
_SMALL_STAGE = dict(out_channels=512, qk_channels=512, ffn_channels=512, last_projector=True)
_LARGE_STAGE = dict(
    in_channels=1024, out_channels=1024, qk_channels=512, ffn_channels=512, projector_groups=16,
    recurrent_tokens=8, last_projector=True,
)
PAPER_STAGES: dict[int, VTStageConfig] = {
    18: VTStageConfig(modules=2, in_channels=256, **_SMALL_STAGE),
    34: VTStageConfig(modules=3, in_channels=256, **_SMALL_STAGE),
    50: VTStageConfig(modules=3, **_LARGE_STAGE),
    101: VTStageConfig(modules=3, **_LARGE_STAGE),
}

# The paper's second VT-R34 configuration (Table 8: 19.2 M params) is a different stage: projector
# queries/keys C/2 wide with 16-group pixel queries, and no last projector.
# ``create_model("vt_resnet34", **VT_RESNET34_TABLE8)`` builds it.
VT_RESNET34_TABLE8: dict[str, object] = dict(
    projector_qk_channels=128, projector_groups=16, last_projector=False
)

_STAGE_FIELDS = set(VTStageConfig.__dataclass_fields__) - {"modules", "in_channels"}


def _resnet(depth: int, num_classes: int, dropout: float) -> ResNet:
    return ResNet(depth, num_classes=num_classes, dropout=dropout)


def _vt_resnet(depth: int, num_classes: int, dropout: float, drop_path: float, **stage: object) -> VTResNet:
    unknown = set(stage) - _STAGE_FIELDS
    if unknown:
        raise ValueError(
            f"vt_resnet{depth} does not take {', '.join(sorted(unknown))}; "
            f"VT stage options: {', '.join(sorted(_STAGE_FIELDS))}"
        )
    cfg = replace(PAPER_STAGES[depth], **stage)  # type: ignore[arg-type]
    return VTResNet(depth, cfg, num_classes=num_classes, dropout=dropout, drop_path=drop_path)


@register_model()
def resnet18(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    """torchvision ResNet-18. fvcore: 1.819 GFLOPs, 11.69 M params (paper 1.814 / 11.7)."""
    return _resnet(18, num_classes, dropout)


@register_model()
def resnet34(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    """torchvision ResNet-34. fvcore: 3.671 GFLOPs, 21.80 M params (paper 3.664 / 21.8)."""
    return _resnet(34, num_classes, dropout)


@register_model()
def resnet50(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    """torchvision ResNet-50. fvcore: 4.112 GFLOPs, 25.56 M params (paper 4.089 / 25.5)."""
    return _resnet(50, num_classes, dropout)


@register_model()
def resnet101(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    """torchvision ResNet-101. fvcore: 7.834 GFLOPs, 44.55 M params (paper 7.802 / 44.4)."""
    return _resnet(101, num_classes, dropout)


@register_model()
def vt_resnet18(
    num_classes: int = 1000,
    num_tokens: int = 16,
    token_channels: int = 1024,
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent",
    relation: Literal["transformer", "none"] = "transformer",
    projector: bool = True,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    **stage: object,
) -> VTResNet:
    """VT-ResNet-18: ``VT-C512-L16-CT1024 ×2`` on ResNet-18's 14×14, 256-channel map.

    Stage: keys/queries C_T/2, FFN hidden C_T/2, projector queries/keys C×C (dense), the first
    projector widens the map to 512 channels, the last module's projector is built (it serves
    ``forward_features``) but skipped by the classifier. fvcore at 224×224: 1.556 GFLOPs,
    11.63 M params: paper Table 8 (1.569 / 11.7) −0.8 % / −0.6 %; Table 2 (1.579 / 11.6)
    −1.4 % / +0.2 %. ``tokenizer``, ``relation``, ``projector``, ``num_tokens`` are the ablation
    switches of spec §5.1; ``**stage`` overrides any other :class:`VTStageConfig` field.
    """
    return _vt_resnet(18, num_classes, dropout, drop_path, num_tokens=num_tokens,
                      token_channels=token_channels, tokenizer=tokenizer, relation=relation,
                      projector=projector, **stage)


@register_model()
def vt_resnet34(
    num_classes: int = 1000,
    num_tokens: int = 16,
    token_channels: int = 1024,
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent",
    relation: Literal["transformer", "none"] = "transformer",
    projector: bool = True,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    **stage: object,
) -> VTResNet:
    """VT-ResNet-34: ``VT-C512-L16-CT1024 ×3``, the same module design as VT-ResNet-18.

    fvcore at 224×224: 3.303 GFLOPs, 21.48 M params: paper Table 2 (3.299 / 21.8) +0.1 % / −1.5 %.
    With ``**VT_RESNET34_TABLE8``: 3.230 / 19.32, paper Table 8 (3.236 / 19.2) −0.2 % / +0.6 %.
    Switches as in :func:`vt_resnet18`.
    """
    return _vt_resnet(34, num_classes, dropout, drop_path, num_tokens=num_tokens,
                      token_channels=token_channels, tokenizer=tokenizer, relation=relation,
                      projector=projector, **stage)


@register_model()
def vt_resnet50(
    num_classes: int = 1000,
    num_tokens: int = 16,
    token_channels: int = 1024,
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent",
    relation: Literal["transformer", "none"] = "transformer",
    projector: bool = True,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    **stage: object,
) -> VTResNet:
    """VT-ResNet-50: ``VT-C1024-L16-CT1024 ×3`` on ResNet-50's 14×14, 1024-channel map.

    Literal equations at C = C_T (no width projection), keys/queries C_T/2, FFN hidden C_T/2,
    projector query convolution in 16 groups, recurrent tokenizer recomputing half of the tokens,
    last projector built but skipped by the classifier. The same stage as VT-ResNet-101. fvcore at
    224×224: 3.505 GFLOPs (+2.7 % vs paper Table 8's 3.412: the tight row, spec §5.4), 21.34 M
    params (−0.3 % vs 21.4).
    """
    return _vt_resnet(50, num_classes, dropout, drop_path, num_tokens=num_tokens,
                      token_channels=token_channels, tokenizer=tokenizer, relation=relation,
                      projector=projector, **stage)


@register_model()
def vt_resnet101(
    num_classes: int = 1000,
    num_tokens: int = 16,
    token_channels: int = 1024,
    tokenizer: Literal["filter", "recurrent", "pooling"] = "recurrent",
    relation: Literal["transformer", "none"] = "transformer",
    projector: bool = True,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    **stage: object,
) -> VTResNet:
    """VT-ResNet-101: the VT-ResNet-50 stage on ResNet-101's trunk.

    fvcore at 224×224: 7.228 GFLOPs (+1.4 % vs paper Table 8's 7.129), 40.33 M params (−2.8 %
    vs 41.5; the paper's R50 and R101 rows disagree by 1.2 M params for one stage, spec §5.4).
    """
    return _vt_resnet(101, num_classes, dropout, drop_path, num_tokens=num_tokens,
                      token_channels=token_channels, tokenizer=tokenizer, relation=relation,
                      projector=projector, **stage)
