"""What a command shows while it works: progress bars only where a person is watching."""
from __future__ import annotations

import sys

__all__ = ["progress_enabled"]


def progress_enabled(requested: bool) -> bool:
    """True when progress bars were asked for and stderr is a terminal: redirected into a log file,
    a bar's ``\\r`` frames would only bury the lines that matter."""
    stream = sys.stderr
    return bool(requested) and hasattr(stream, "isatty") and stream.isatty()
