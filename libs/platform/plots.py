"""Figures for reports and MLflow artifacts: matplotlib's object API on the Agg canvas.

Why not pyplot: pyplot keeps global state (a backend chosen once per process, figures registered
until closed). Jobs and benchmarks run inside processes that may already have imported pyplot
with another backend, and ``matplotlib.use(..., force=True)`` would switch it for everyone. A
``Figure`` with its own ``FigureCanvasAgg`` needs neither a backend switch nor a close -- the same
approach as :func:`libs.ml.metrics.plot_curves`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def saved_axes(path: str | os.PathLike, figsize: tuple[float, float], dpi: int = 110) -> Iterator[Any]:
    """Axes of a new one-panel figure, written to ``path`` as PNG when the block ends without error.

    Parent folders are created; an exception inside the block writes nothing (no half-drawn file).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    yield ax
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
