"""Train an image classifier: ``python experiments/cls.py --backbone vt_resnet34``.

Subcommands ``fit`` (the default), ``validate``, ``test`` (``--ckpt_path C``: top-1/top-5 and
per-class accuracy, written beside C) and ``predict`` (``--ckpt_path C images/``: top-k classes).

Synthetic shapes by default (no files needed, a few minutes on a CPU); ``--data imagenet
--data-dir PATH`` for ImageNet; ``--recipe standard|advanced`` for the paper's recipes (method §6);
``--config experiments/configs/imagenet_advanced.yaml`` for a whole paper configuration; every
Lightning Trainer flag as ``--trainer.<flag>``. ``--help`` lists everything, ``--print_config``
shows the resolved config. See ``vt/cli.py`` for the run directory and exit codes.
"""

import sys

from vt.cli import main

ALIASES = {
    "--backbone": "--model.name",
    "--recipe": "--model.recipe",
    "--data-dir": "--data.root",
}

if __name__ == "__main__":
    sys.exit(main("classification", ALIASES))
