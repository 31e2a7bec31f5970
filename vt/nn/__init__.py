"""Paper building blocks in plain PyTorch (no Lightning): method §2."""

from vt.nn.attention import attend
from vt.nn.fold import fold_batchnorm
from vt.nn.projector import Projector
from vt.nn.tokenizer import FilterTokenizer, PoolingTokenizer, RecurrentTokenizer, map_overlap
from vt.nn.transformer import TokenTransformer
from vt.nn.visual_transformer import VisualTransformer, VTOutput

__all__ = [
    "FilterTokenizer",
    "PoolingTokenizer",
    "Projector",
    "RecurrentTokenizer",
    "TokenTransformer",
    "VTOutput",
    "VisualTransformer",
    "attend",
    "fold_batchnorm",
    "map_overlap",
]
