"""The version of s2i, recorded in every store it makes (base layer: any module may import it)."""
__version__ = "0.1.0"
