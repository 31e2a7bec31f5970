"""FLOP and parameter counting with fvcore, and the paper's efficiency tables beside it (method §5).

* `vt.flops.counting`: fvcore counting (one multiply-add = one FLOP) of models, necks, segmenters;
* `vt.flops.parts`: the parts VT changes (VT stage, necks) as modules of positional tensors;
* `vt.flops.paper`: the paper's reference figures (method §5.1, §5.2);
* `vt.flops.tables`: our counts beside them, and the markdown/CSV formatter.

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

__all__ = [
    "ABLATIONS",
    "COUNTING_NOTE",
    "PAPER_ABLATIONS",
    "PAPER_CLASSIFICATION",
    "PAPER_SEGMENTATION",
    "PAPER_STAGE_REDUCTION",
    "TABLE_FORMATS",
    "AblationRow",
    "Comparison",
    "Count",
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
    "feature_shapes",
    "format_table",
    "segmentation_table",
    "stage_table",
]
