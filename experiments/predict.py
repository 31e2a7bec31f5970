"""Predict with a trained checkpoint: top-k classes of each image, or a mask per image.

    python experiments/predict.py --checkpoint runs/cls/resnet34/version_0/checkpoints/last.ckpt a.jpg b.png
    python experiments/predict.py --checkpoint runs/seg/vtfpn_resnet50/version_0/checkpoints/last.ckpt \\
        --out-dir masks person.jpg photos/

The same as ``python experiments/cls.py predict ...`` / ``seg.py predict ...`` (`vt.predict`, where
every option is described): the task is rebuilt from the checkpoint and run through the Trainer.
Classifiers print the top-5 (``--top-k``) classes by name and write ``<out-dir>/predictions.csv``
and ``.json``; segmenters write an 8-bit PNG of class ids per image at its original resolution.
"""

from __future__ import annotations

import sys

from vt.predict import main

if __name__ == "__main__":
    sys.exit(main())
