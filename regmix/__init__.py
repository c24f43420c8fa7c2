"""RegMix: data mixture as regression, as a reproducible pipeline library."""

__version__ = "0.1.0"
