"""A health check for an election, with the rule of client-go's `HealthzAdaptor`."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import anyio

if TYPE_CHECKING:
    from ._election import Election

__all__ = ["HealthCheck"]


@final
class HealthCheck:
    """Whether a candidate that the lock names as leader still renews, for a liveness probe.

    client-go's rule: healthy while the last observed record names someone else (or no one);
    unhealthy when it names this candidate and no renew has moved the deadline for
    `lease_duration + tolerance` seconds. That is a leader cut off from the API server for
    longer than its lease (its work was cancelled at the renew deadline, but its record still
    stands), or one whose work outlived its lease. client-go's components use a 20 s
    tolerance.
    """

    __slots__ = ("_election", "tolerance")

    def __init__(self, election: Election, tolerance: float = 20.0) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance!r}")
        self._election = election
        self.tolerance = tolerance

    def overdue(self) -> float | None:
        """Seconds since the last renew when that makes the candidate unhealthy, else None."""
        stats = self._election.statistics()
        if stats.leader != stats.identity or stats.renewed_at is None:
            return None
        age = anyio.current_time() - stats.renewed_at
        if age <= self._election.timing.lease_duration + self.tolerance:
            return None
        return age

    def check(self) -> str | None:
        """None when healthy; otherwise why not (one line)."""
        age = self.overdue()
        if age is None:
            return None
        limit = self._election.timing.lease_duration + self.tolerance
        return (
            f"the lock {self._election.lock} names {self._election.identity} as leader, but its "
            f"last renew was {age:.1f} s ago (lease duration + tolerance = {limit:g} s)"
        )

    @property
    def healthy(self) -> bool:
        return self.overdue() is None
