"""vt: Visual Transformers (Wu et al. 2020) in PyTorch and Lightning."""

__version__ = "0.1.0"

from vt.inference import load_model  # noqa: E402  (vt.load_model)
from vt.models import create_model  # noqa: E402  (vt.create_model, beside vt.load_model)
