"""One term as leader: `Term`, the engine's side of it, and `Leadership`, the leader's.

The engine moves a term's deadline and ends it through its `Term`; the leader's work is
given the term's `Leadership`, which only reads the same state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, final

import anyio

from ._fence import Fence
from ._lock import UNKNOWN_HOLDER

if TYPE_CHECKING:
    from ._lock import Observation

__all__ = ["Leadership", "Term", "why_not_ours"]

logger = logging.getLogger("trio_election")


@final
class Term:
    """The engine's side of one term: `extend()` moves its deadline (a renew changed the
    record), `lose()` ends it. `leadership` is what the leader's work sees of it."""

    __slots__ = (
        "acquired_at",
        "cancel_scope",
        "clock_deadline",
        "identity",
        "leadership",
        "lock",
        "loss",
        "number",
        "reason",
    )

    def __init__(
        self,
        *,
        identity: str,
        lock: str,
        number: int,
        acquired_at: float,
        deadline: float,
        clock_deadline: float,
    ) -> None:
        self.identity = identity
        self.lock = lock
        self.number = number
        self.acquired_at = acquired_at
        self.cancel_scope = anyio.CancelScope(deadline=deadline)
        #: `deadline` in the time of the engine's clock
        self.clock_deadline = clock_deadline
        #: the kind of loss (one of `LOSS_KINDS`) once `lose()` ended the term, else ''
        self.loss = ""
        self.reason = ""
        self.leadership = Leadership(self)

    @property
    def lost(self) -> bool:
        return bool(self.loss) or anyio.current_time() >= self.cancel_scope.deadline

    def extend(self, clock_deadline: float, deadline: float) -> None:
        """Move the deadline: `clock_deadline` in the time of the engine's clock,
        `deadline` the same instant in the event loop's time."""
        self.clock_deadline = clock_deadline
        self.cancel_scope.deadline = deadline

    def lose(self, kind: str, reason: str) -> None:
        """End the term now (cancel the work), logging the reason once at WARNING; `kind`
        is one of `LOSS_KINDS`, for the statistics. Once lost, later calls do nothing."""
        if self.loss:
            return
        self.loss = kind
        self.reason = reason
        logger.warning("%s lost %s (term %d): %s", self.identity, self.lock, self.number, reason)
        self.cancel_scope.cancel(reason=f"leadership lost: {reason}")


@final
class Leadership:
    """One term as leader, as the leader's work sees it (read-only).

    - `identity`: our identity; `lock`: the lock's description;
    - `term`: the record's transitions count at acquisition (a fencing token that grows with
      every new term);
    - `fence`: the term's `Fence` (lock, identity, term), to stamp on what the leader
      writes so that a store can refuse a stale leader's writes;
    - `acquired_at`: the event loop's time at which the acquiring write was sent;
    - `deadline`: the event loop's time by which the body is cancelled unless the lease is
      renewed first;
    - `lost`: True once the term ended by loss (the deadline passed, a record that this
      process did not write stopped naming us, or renewing became impossible);
    - `reason`: why it was lost ('' while it was not);
    - `cancel_scope`: the (anyio) scope the leader's work runs in.
    """

    __slots__ = ("_term",)

    def __init__(self, term: Term) -> None:
        self._term = term

    def __repr__(self) -> str:
        state = "lost" if self.lost else "live"
        return f"<Leadership {self.identity!r} of {self.lock} term={self.term} {state}>"

    @property
    def identity(self) -> str:
        return self._term.identity

    @property
    def lock(self) -> str:
        return self._term.lock

    @property
    def term(self) -> int:
        return self._term.number

    @property
    def fence(self) -> Fence:
        return Fence(lock=self._term.lock, holder=self._term.identity, term=self._term.number)

    @property
    def acquired_at(self) -> float:
        return self._term.acquired_at

    @property
    def cancel_scope(self) -> anyio.CancelScope:
        return self._term.cancel_scope

    @property
    def deadline(self) -> float:
        return self._term.cancel_scope.deadline

    @property
    def lost(self) -> bool:
        return self._term.lost

    @property
    def reason(self) -> str:
        """Why the term was lost ('' while it was not)."""
        if self._term.loss:
            return self._term.reason
        if self.lost:
            return "the renew deadline passed without a successful renew"
        return ""


def why_not_ours(obs: Observation) -> tuple[str, str]:
    """Why an observed state of the lock ends our term (one that does not name us): its
    kind (`LOSS_KINDS`), and the reason."""
    if not obs.exists:
        return "deleted", "the lock object was deleted"
    if obs.holder is None:
        return "released", "another process released the lock (its record has an empty holder)"
    if obs.holder == UNKNOWN_HOLDER:
        return "unreadable", "the lock's record was overwritten with one that cannot be read"
    return "other_holder", f"{obs.holder} holds the lock now"
