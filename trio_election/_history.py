"""A checker over candidates' leadership intervals: never two leaders, and how fast a new one."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

import trio

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = ["History", "Interval"]


@final
@dataclass(frozen=True, slots=True)
class Interval:
    """One term of one candidate, from the start of its work to the end of its unwinding."""

    identity: str
    start: float
    end: float


@final
@dataclass(slots=True)
class History:
    """Collects leadership intervals (trio time) and checks them."""

    intervals: list[Interval] = field(default_factory=list[Interval])
    _open: dict[str, float] = field(default_factory=dict[str, float])

    @contextmanager
    def leading(self, identity: str) -> Generator[None]:
        """Record the block as one interval of `identity` leading."""
        if identity in self._open:
            raise AssertionError(f"{identity} started leading twice")
        self._open[identity] = trio.current_time()
        try:
            yield
        finally:
            start = self._open.pop(identity)
            self.intervals.append(Interval(identity, start, trio.current_time()))

    def closed(self, now: float | None = None) -> list[Interval]:
        """Every interval, those still open ending at `now`, ordered by start."""
        everything = list(self.intervals)
        if self._open:
            end = trio.current_time() if now is None else now
            everything += [Interval(i, s, end) for i, s in self._open.items()]
        return sorted(everything, key=lambda iv: (iv.start, iv.end))

    def overlaps(self) -> list[tuple[Interval, Interval]]:
        """Pairs of intervals in which two candidates led at the same instant."""
        found: list[tuple[Interval, Interval]] = []
        latest: Interval | None = None
        for iv in self.closed():
            if latest is not None and iv.start < latest.end:
                found.append((latest, iv))
            if latest is None or iv.end > latest.end:
                latest = iv
        return found

    def assert_one_leader(self) -> None:
        """Fail with the offending intervals if two candidates ever led at once."""
        pairs = self.overlaps()
        if pairs:
            lines = "\n".join(f"  {a} overlaps {b}" for a, b in pairs[:10])
            raise AssertionError(f"{len(pairs)} overlapping terms:\n{lines}")

    def next_start_after(self, t: float) -> float | None:
        """The first time at or after `t` that a term started, None if none did."""
        starts = [iv.start for iv in self.closed() if iv.start >= t]
        return min(starts) if starts else None
