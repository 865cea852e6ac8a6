"""The suite's plots: matplotlib without a display, and one way to finish and write a figure."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path, ax: Optional[Any] = None) -> Path:
    """Grid and legend on ``ax`` (when given), tight layout, ``out`` written at 110 dpi (its folder made), closed."""
    if ax is not None:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    pyplot().close(fig)
    return out
