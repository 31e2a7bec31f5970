"""FLOP and parameter counting with fvcore, and the paper's efficiency tables beside it (method §5).

* `vt.flops.counting`: fvcore counting (one multiply-add = one FLOP) of models, necks, segmenters;
* `vt.flops.parts`: the parts VT changes (VT stage, necks) as modules of positional tensors;
* `vt.flops.paper`: the paper's reference figures (method §5.1, §5.2);
* `vt.flops.tables`: our counts beside them, and the markdown/CSV formatter;
* `vt.flops.torch_counter`: PyTorch's ``FlopCounterMode`` cross-checking the fvcore counts.

``python experiments/flops.py`` prints the tables.
"""

from vt.flops.counting import (
    COUNTING_NOTE,
    Count,
    count,
    count_image_model,
    count_model,
    count_neck,
    count_segmenter,
    feature_shapes,
)
from vt.flops.paper import (
    ABLATIONS,
    PAPER_ABLATIONS,
    PAPER_CLASSIFICATION,
    PAPER_SEGMENTATION,
    PAPER_STAGE_REDUCTION,
    PaperRow,
    SegPaperRow,
)
from vt.flops.parts import NeckOnMaps, NeckRefinement, TokensOnly
from vt.flops.tables import (
    TABLE_FORMATS,
    AblationRow,
    Comparison,
    SegmentationRow,
    StageComparison,
    ablation_table,
    classification_table,
    format_table,
    segmentation_table,
    stage_table,
)
from vt.flops.torch_counter import FVCORE_ONLY, CounterRow, CrossCheck, counter_table, cross_check, torch_flops

__all__ = [
    "ABLATIONS",
    "COUNTING_NOTE",
    "FVCORE_ONLY",
    "PAPER_ABLATIONS",
    "PAPER_CLASSIFICATION",
    "PAPER_SEGMENTATION",
    "PAPER_STAGE_REDUCTION",
    "TABLE_FORMATS",
    "AblationRow",
    "Comparison",
    "Count",
    "CounterRow",
    "CrossCheck",
    "NeckOnMaps",
    "NeckRefinement",
    "PaperRow",
    "SegPaperRow",
    "SegmentationRow",
    "StageComparison",
    "TokensOnly",
    "ablation_table",
    "classification_table",
    "count",
    "count_image_model",
    "count_model",
    "count_neck",
    "count_segmenter",
    "counter_table",
    "cross_check",
    "feature_shapes",
    "format_table",
    "segmentation_table",
    "stage_table",
    "torch_flops",
]
