"""Matplotlib set up once for files (no display on servers), and one atomic PNG save."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from regmix.files import atomic_path  # noqa: E402

__all__ = ["plt", "save"]


def save(fig: "plt.Figure", path: str | os.PathLike, dpi: int = 120) -> None:
    """Lay out `fig`, write it to `path` as PNG (never half-written) and close it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
