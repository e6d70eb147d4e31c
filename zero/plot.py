"""Figures that are always saved to a file, and shown only when asked.

`figures(show)` picks a headless backend (Agg) unless the user asked for
windows and a display exists; `save(fig, folder, name)` writes the PNG and
prints where it went.
"""
import os
import sys
from pathlib import Path

_show = False


def figures(show=False):
    """Import and configure matplotlib; returns pyplot."""
    global _show
    import matplotlib
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
        or sys.platform in ("darwin", "win32")
    _show = bool(show and has_display)
    if not _show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, folder, name):
    """Write fig to folder/name.png, print the path, close it unless showing."""
    import matplotlib.pyplot as plt
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"  figure saved: {path}")
    if not _show:
        plt.close(fig)
    return path


def show():
    """Open the windows of every figure kept open (only after figures(show=True))."""
    if _show:
        import matplotlib.pyplot as plt
        plt.show()
