"""A health check for an election, in the manner of client-go's `HealthzAdaptor`."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

if TYPE_CHECKING:
    from ._election import Election

__all__ = ["HealthCheck"]


@final
class HealthCheck:
    """Whether a candidate is stuck as leader, for a liveness probe.

    Healthy while not leading. Unhealthy when a term is still open (its work has not
    unwound) and no renew has moved its deadline for `lease_duration + tolerance` seconds:
    the work outlived its lease (shielded from cancellation, or blocked in a thread), and
    restarting the process is the cure. client-go's components use a 20 s tolerance.
    """

    __slots__ = ("_election", "tolerance")

    def __init__(self, election: Election, tolerance: float = 20.0) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance!r}")
        self._election = election
        self.tolerance = tolerance

    def check(self) -> str | None:
        """None when healthy; otherwise why not (one line)."""
        election = self._election
        if election.leadership is None:
            return None
        stats = election.statistics()
        if stats.renewed_at is None:
            return None
        overdue = trio.current_time() - stats.renewed_at
        limit = election.timing.lease_duration + self.tolerance
        if overdue <= limit:
            return None
        return (
            f"{stats.identity} still leads {stats.lock} in its work, but its last renew was "
            f"{overdue:.1f} s ago (lease duration + tolerance = {limit:g} s)"
        )

    @property
    def healthy(self) -> bool:
        return self.check() is None
