"""Train a semantic segmenter: ``python experiments/seg.py --model vtfpn_resnet50``.

Synthetic shapes by default (no files needed); ``--data lip|cocostuff --data-dir PATH`` for the
paper's datasets; ``--recipe fpn_1x|fpn_lip`` (method §6); ``--config experiments/configs/lip.yaml``
for a whole paper configuration; every Lightning Trainer flag as ``--trainer.<flag>``. ``--help``
lists everything, ``--print_config`` shows the resolved config. See ``vt/cli.py``.
"""

import sys

from vt.cli import main

ALIASES = {
    "--model": "--model.name",
    "--recipe": "--model.recipe",
    "--data-dir": "--data.root",
}

if __name__ == "__main__":
    sys.exit(main("segmentation", ALIASES))
