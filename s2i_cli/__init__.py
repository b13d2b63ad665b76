"""s2i: Skeleton-to-Image conversion, pretraining and evaluation."""
__version__ = "0.1.0"
