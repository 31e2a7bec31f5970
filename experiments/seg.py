"""Train a semantic segmenter: ``python experiments/seg.py --model vtfpn_resnet50``.

Subcommands ``fit`` (the default), ``validate``, ``test``, ``predict``: ``seg.py test --ckpt_path last
--tta flip --scales 0.5 0.75 1.0 1.25 1.5 1.75`` scores a checkpoint at original resolution.

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
    # The test protocol (vt/tasks/seg_eval.py), for test, predict and --model.val_protocol test.
    "--tta": "--model.tta",
    "--scales": "--model.test_scales",
    "--window": "--model.window",
    "--stride": "--model.stride",
}
LISTS = frozenset({"--scales"})  # --scales 0.5 0.75 1.0 1.25 1.5 1.75

if __name__ == "__main__":
    sys.exit(main("segmentation", ALIASES, lists=LISTS))
