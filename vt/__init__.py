"""vt: Visual Transformers (Wu et al. 2020) in PyTorch and Lightning."""

__version__ = "0.1.0"
