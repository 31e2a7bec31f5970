"""Paper building blocks in plain PyTorch (no Lightning): spec §2."""

from vt.nn.attention import attend
from vt.nn.layers import DropPath
from vt.nn.projector import Projector
from vt.nn.tokenizer import FilterTokenizer, PoolingTokenizer, RecurrentTokenizer
from vt.nn.transformer import TokenTransformer
from vt.nn.visual_transformer import VisualTransformer, VTOutput

__all__ = [
    "DropPath",
    "FilterTokenizer",
    "PoolingTokenizer",
    "Projector",
    "RecurrentTokenizer",
    "TokenTransformer",
    "VTOutput",
    "VisualTransformer",
    "attend",
]
