"""Progress output shared by the training engine, ItemGrouper and the recommend path.

``verbose=0`` prints nothing; ``verbose>=1`` prints progress bars (``tqdm.auto``, at 1) and
summary lines. Bars and summary lines go to ``sys.stderr``, the per-epoch lines of
``verbose=2`` to ``sys.stdout`` (they are the fit's log, as scikit-learn's ``verbose``).
Summary lines are written with ``tqdm.write``, so that they never break a bar that is on
screen. This module imports no torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["batch_bar", "progress_line"]

T = TypeVar("T")


def progress_line(verbose: int, who: str, what: str, seconds: float | None = None) -> None:
    """Write ``"<who>: <what> (<seconds> s)"`` to stderr when ``verbose >= 1``."""
    if verbose < 1:
        return
    timing = "" if seconds is None else f" ({seconds:.2f} s)"
    tqdm.write(f"{who}: {what}{timing}", file=sys.stderr)


def batch_bar(items: Iterable[T], total: int, desc: str, verbose: int) -> Iterator[T]:
    """``items`` with a ``tqdm.auto`` bar over them at ``verbose == 1`` when there are more than
    one (``total``); the bar is cleared when done (``leave=False``): unlike a fit's epoch bar,
    it is no record worth keeping, and a search scores many times."""
    if verbose != 1 or total <= 1:
        yield from items
        return
    with tqdm(items, total=total, desc=desc, unit="batch", leave=False) as bar:
        yield from bar
