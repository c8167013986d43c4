"""Fault schedules: what happens to which candidate when, as plain values.

A `Schedule` is everything one run depends on: the lock (`memory`, `leases`,
`configmaps`), the timing, each candidate's clock rate and offset and whether it watches,
the faults in time order, and a seed for every random choice (how long each term works, the
engine's jitter, trio's order of tasks waking at one instant). Its `repr()` is valid
Python, one line per fault with a comment saying what it does, so a failing schedule that
hypothesis prints (after "Schedule(" in the failure's notes) replays exactly:

    cd tests && python -c '
    from property._runner import run_schedule
    from property._schedule import LEADER, Candidate, Event, Schedule
    print(run_schedule(Schedule(...)).report())'

or pin it to a property with hypothesis' `@example(Schedule(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "FOREIGN",
    "KINDS",
    "LEADER",
    "Candidate",
    "Event",
    "Schedule",
]

LEADER: Final = -1
"""An event target: whichever candidate leads at that moment (candidate 0 if none does)."""

KINDS: Final = {
    "fail": "the next {n} requests fail (connection error)",
    "5xx": "the next {n} requests get {code}",
    "429": "the next {n} requests get 429, Retry-After {code} s",
    "conflict": "the next {n} writes get 409 Conflict",
    "hang": "cut off from the API for {span:g} s",
    "slow": "every request {size:g} s slower for {span:g} s",
    "lag": "watch events {size:g} s late for {span:g} s",
    "drop": "its watch streams break",
    "expire": "history compacted, every watch gets 410 Gone",
    "stall": "its next write lands {size:g} s late, unanswered",
    "crash": "crashes (no release), restarts after {span:g} s{same}",
    "stop": "stops (releases), restarts after {span:g} s{same}",
    "foreign": "{foreign}",
}
"""Every kind of event, and how its comment reads."""

FOREIGN: Final = {
    0: "another process writes holder 'intruder' for {size:g} s",
    1: "another process writes garbage into the record",
    2: "another process writes a record naming this candidate",
    3: "another process releases the lock (empty holder)",
    4: "another process deletes the lock object",
}
"""The foreign writes (`Event.code` of a `foreign` event)."""

SAFE_FOREIGN: Final = frozenset({0, 1, 2})
"""Foreign writes after which never two leaders (with a holder's duration >= lease)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate slot: a process that may crash and restart, with its own clock."""

    rate: float = 1.0
    """How fast its clock runs against trio's (1.1: 10 % fast)."""
    watch: bool = True
    """False: the lock refuses it watches, so it polls."""
    offset: float = 0.0
    """Its clock's offset (seconds): the guarantee does not depend on it."""
    start: float = 0.0
    """When its first process starts (trio seconds)."""

    def __repr__(self) -> str:
        parts = [f"rate={self.rate!r}"]
        if not self.watch:
            parts.append("watch=False")
        if self.offset:
            parts.append(f"offset={self.offset!r}")
        if self.start:
            parts.append(f"start={self.start!r}")
        return f"Candidate({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Event:
    """One fault at `at` seconds (trio time) for candidate `target` (or the `LEADER`)."""

    at: float
    kind: str
    target: int = LEADER
    size: float = 0.0
    """A count of requests, or seconds (latency, lag, lateness, a foreign lease)."""
    span: float = 0.0
    """How long it lasts, in seconds (then the candidate is healed, or restarted)."""
    code: int = 0
    """The HTTP status of a 5xx; the Retry-After of a 429; the foreign write (`FOREIGN`);
    1 for a restart with the same identity."""

    def describe(self) -> str:
        who = "the leader" if self.target == LEADER else f"candidate {self.target}"
        text = KINDS[self.kind].format(
            n=int(self.size),
            size=self.size,
            span=self.span,
            code=self.code,
            same=" with the same identity" if self.code == 1 else "",
            foreign=FOREIGN.get(self.code, "?").format(size=self.size),
        )
        if self.kind == "expire" or (self.kind == "foreign" and self.code != 2):
            return text
        return f"{who}: {text}"

    def __repr__(self) -> str:
        parts = [repr(self.at), repr(self.kind)]
        parts.append("LEADER" if self.target == LEADER else repr(self.target))
        for name in ("size", "span", "code"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value!r}")
        return f"Event({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Everything one run depends on."""

    backend: str = "memory"
    """``memory`` (a MemoryLock), or the resource of a Kubernetes lock over `FakeKubeApi`
    (``leases``, ``configmaps``)."""
    timing: tuple[float, float, float] = (15.0, 10.0, 2.0)
    """lease_duration, renew_deadline, retry_period."""
    candidates: tuple[Candidate, ...] = (Candidate(), Candidate())
    events: tuple[Event, ...] = ()
    seed: int = 0
    work: float = 60.0
    """Each term works a random while of at most this long, then steps down."""
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def lease(self) -> float:
        return self.timing[0]

    @property
    def renew(self) -> float:
        return self.timing[1]

    @property
    def retry(self) -> float:
        return self.timing[2]

    @property
    def rate_ratio(self) -> float:
        rates = [c.rate for c in self.candidates]
        return max(rates) / min(rates)

    @property
    def end_of_faults(self) -> float:
        """When the last fault has healed and the last restart is done."""
        return max((e.at + e.span for e in self.events), default=0.0)

    def __repr__(self) -> str:
        lines = [
            "Schedule(",
            f"    backend={self.backend!r},",
            f"    timing={self.timing!r},",
            f"    seed={self.seed!r},",
            f"    work={self.work!r},",
            "    candidates=(",
            *(f"        {c!r},  # {i}" for i, c in enumerate(self.candidates)),
            "    ),",
            "    events=(",
            *(f"        {e!r},  # {e.describe()}" for e in self.events),
            "    ),",
            ")",
        ]
        return "\n".join(lines)
