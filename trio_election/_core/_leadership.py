"""`Leadership`: one term as leader, as the engine hands it out."""

from __future__ import annotations

import logging
from typing import final

import trio

__all__ = ["Leadership"]

logger = logging.getLogger("trio_election")


@final
class Leadership:
    """One term as leader.

    - `identity`: our identity; `lock`: the lock's description;
    - `term`: the record's transitions count at acquisition (a fencing token that grows with
      every new term);
    - `acquired_at`: trio time at which the acquiring write was sent;
    - `deadline`: trio time by which the body is cancelled unless the lease is renewed first;
    - `lost`: True once the term ended by loss (the deadline passed, a record that this
      process did not write stopped naming us, or renewing became impossible);
    - `reason`: why it was lost ('' while it was not);
    - `cancel_scope`: the scope the leader's work runs in.

    The engine ends a term with `lose()` and moves its deadline with `extend()`; the
    leader's work only reads it.
    """

    __slots__ = (
        "_clock_deadline",
        "_loss",
        "_lost",
        "_reason",
        "acquired_at",
        "cancel_scope",
        "identity",
        "lock",
        "term",
    )

    def __init__(
        self,
        *,
        identity: str,
        lock: str,
        term: int,
        acquired_at: float,
        deadline: float,
        clock_deadline: float,
    ) -> None:
        self.identity = identity
        self.lock = lock
        self.term = term
        self.acquired_at = acquired_at
        self.cancel_scope = trio.CancelScope(deadline=deadline)
        self._clock_deadline = clock_deadline
        self._lost = False
        self._reason = ""
        self._loss = ""

    def __repr__(self) -> str:
        state = "lost" if self.lost else "live"
        return f"<Leadership {self.identity!r} of {self.lock} term={self.term} {state}>"

    @property
    def deadline(self) -> float:
        return self.cancel_scope.deadline

    @property
    def lost(self) -> bool:
        return self._lost or trio.current_time() >= self.cancel_scope.deadline

    @property
    def reason(self) -> str:
        """Why the term was lost ('' while it was not)."""
        if self._lost:
            return self._reason
        if self.lost:
            return "the renew deadline passed without a successful renew"
        return ""

    @property
    def loss(self) -> str:
        """The kind of loss (one of `LOSS_KINDS`) once `lose()` ended the term, else ''."""
        return self._loss

    @property
    def clock_deadline(self) -> float:
        """`deadline` in the time of the engine's clock."""
        return self._clock_deadline

    def extend(self, clock_deadline: float, deadline: float) -> None:
        """Move the deadline (a renew changed the record): `clock_deadline` in the time of
        the engine's clock, `deadline` the same instant in trio time."""
        self._clock_deadline = clock_deadline
        self.cancel_scope.deadline = deadline

    def lose(self, kind: str, reason: str) -> None:
        """End the term now (cancel the work), logging the reason once at WARNING; `kind`
        is one of `LOSS_KINDS`, for the statistics. Once lost, later calls do nothing."""
        if self._lost:
            return
        self._lost = True
        self._loss = kind
        self._reason = reason
        logger.warning("%s lost %s (term %d): %s", self.identity, self.lock, self.term, reason)
        self.cancel_scope.cancel(reason=f"leadership lost: {reason}")
