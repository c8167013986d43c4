"""Printing what happens as it happens, and a timeline of who led when."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trio_election._history import Interval

__all__ = ["Show", "timeline"]


class Show:
    """Prints a line with the seconds since the demo started."""

    def __init__(self) -> None:
        self.start = trio.current_time()

    def __call__(self, text: str) -> None:
        print(f"[{trio.current_time() - self.start:6.2f}s] {text}", flush=True)


def timeline(intervals: Sequence[Interval], start: float, end: float, width: int = 60) -> str:
    """A text chart of who led when: one row per candidate, '#' while leading."""
    names = sorted({iv.identity for iv in intervals})
    span = max(end - start, 1e-9)
    rows: list[str] = []
    for name in names:
        cells = [" "] * width
        for iv in intervals:
            if iv.identity != name:
                continue
            first = int((iv.start - start) / span * width)
            last = max(first + 1, int((iv.end - start) / span * width))
            for i in range(max(first, 0), min(last, width)):
                cells[i] = "#"
        rows.append(f"{name:>14} |{''.join(cells)}|")
    rows.append(f"{'':>14}  0s{'':>{width - 8}}{end - start:5.1f}s")
    return "\n".join(rows)
