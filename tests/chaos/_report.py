"""What each chaos run measured, and the summary table printed at the end of the session."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One run of one fault scenario."""

    fault: str
    overlaps: list[float] = field(default_factory=list[float])
    """How long each overlap of two leaders lasted (seconds); none is the point."""
    kept: bool = False
    """The leader kept its term through the fault."""
    stopped_after: float | None = None
    """From the fault to the cut-off leader's work being cancelled."""
    deadline_slack: float | None = None
    """How long before its latest possible deadline the leader stopped (>= 0 is on time)."""
    recovery: float | None = None
    """From the fault to the first work of the next leader."""
    recovery_bound: float | None = None
    """The bound that next leader was held to, from the fault."""
    successor: str | None = None
    """Who led next: "follower", or "leader" when the old leader took a new term."""
    unwind_after_resume: float | None = None
    """A leader frozen past its deadline: from SIGCONT to its work's end (its unwinding)."""
    notes: list[str] = field(default_factory=list[str])


RESULTS: list[Outcome] = []
"""Every outcome of this session, in order (also of failed runs)."""


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile: with few runs, p95 is the largest value seen."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {_quantile(values, 0.95):.2f}"


def summary(results: list[Outcome]) -> str:
    """A table, one line per fault: runs, overlaps, how often the leader kept its term,
    the leader's stop and the recovery (median / p95, seconds from the fault)."""
    faults: dict[str, list[Outcome]] = {}
    for outcome in results:
        faults.setdefault(outcome.fault, []).append(outcome)
    width = max((len(fault) for fault in faults), default=5)
    header = (
        f"{'fault':{width}} {'runs':>4} {'overlaps':>12} {'kept':>4} "
        f"{'leader stopped':>15} {'new leader':>13} {'bound':>6}  next"
    )
    lines = [header, "-" * len(header)]
    for fault, outcomes in faults.items():
        overlaps = sum(len(o.overlaps) for o in outcomes)
        longest = max((d for o in outcomes for d in o.overlaps), default=0.0)
        overlap_text = f"{overlaps}" + (f" ({longest:.3f}s)" if overlaps else "")
        stops = [o.stopped_after for o in outcomes if o.stopped_after is not None]
        recoveries = [o.recovery for o in outcomes if o.recovery is not None]
        bounds = [o.recovery_bound for o in outcomes if o.recovery_bound is not None]
        kept = sum(o.kept for o in outcomes)
        taken = {who: sum(o.successor == who for o in outcomes) for who in ("follower", "leader")}
        next_text = " ".join(f"{who} {n}" for who, n in taken.items() if n) or "-"
        lines.append(
            f"{fault:{width}} {len(outcomes):>4} {overlap_text:>12} {kept:>4} "
            f"{_seconds(stops):>15} {_seconds(recoveries):>13} "
            f"{(f'{max(bounds):.1f}' if bounds else '-'):>6}  {next_text}"
        )
    unwinds = [o.unwind_after_resume for o in results if o.unwind_after_resume is not None]
    lines.append("")
    lines.append(
        "times: median / p95 in seconds from the fault; 'leader stopped': its work "
        "cancelled; 'new leader': the next leader's work starts; 'bound': the largest "
        "bound that start was held to; 'next': who led next (the old leader in a new term, "
        "or a follower)."
    )
    if unwinds:
        lines.append(
            "a leader frozen (SIGSTOP) past its deadline unwound in "
            f"{_seconds([u * 1000 for u in unwinds])} ms after SIGCONT (median / p95)."
        )
    notes = [f"  {o.fault}: {note}" for o in results for note in o.notes]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
