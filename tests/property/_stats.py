"""Counts over every schedule run in this test session, printed at its end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._runner import median, percentile

if TYPE_CHECKING:
    from ._runner import Outcome

__all__ = ["TALLIES", "Tally", "record", "summary"]


@dataclass(slots=True)
class Tally:
    """What one property saw."""

    schedules: int = 0
    with_overlap: int = 0
    overlaps: list[float] = field(default_factory=list[float])
    recoveries: list[float] = field(default_factory=list[float])
    """From a leader's crash to the next term."""
    settled: list[float] = field(default_factory=list[float])
    """From the last fault's end to a leader."""
    virtual: float = 0.0
    real: float = 0.0


TALLIES: dict[str, Tally] = {}


def record(name: str, outcome: Outcome, real: float) -> None:
    tally = TALLIES.setdefault(name, Tally())
    tally.schedules += 1
    found = outcome.overlap_seconds()
    tally.with_overlap += bool(found)
    tally.overlaps.extend(found)
    tally.recoveries.extend(outcome.recoveries())
    settled = outcome.quiet_recovery()
    if settled is not None:
        tally.settled.append(settled)
    tally.virtual += outcome.end
    tally.real += real


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {median(values):.2f} s, p95 {percentile(values, 0.95):.2f} s"


def summary() -> list[str]:
    if not TALLIES:
        return []
    lines: list[str] = []
    total = sum(t.schedules for t in TALLIES.values())
    lines.append(f"{total} schedules in all")
    for name, t in sorted(TALLIES.items()):
        overlap = (
            f"{t.with_overlap} with two leaders (longest {max(t.overlaps):.3f} s)"
            if t.overlaps
            else "never two leaders"
        )
        lines.append(
            f"{name}: {t.schedules} schedules, {t.virtual / 3600:.1f} h virtual in "
            f"{t.real:.1f} s; {overlap}; leader crash to new leader: {_spread(t.recoveries)} "
            f"(n={len(t.recoveries)}); last fault to a leader: {_spread(t.settled)}"
        )
    return lines
