"""Telling a 403 that will heal from a missing permission.

A single 403 is not proof that a verb is missing: an apiserver that has just (re)started
answers 403 to users with the right bindings until its RBAC caches are filled (measured: 403
at +2.339 s, 200 at +2.363 s after start; up to a few seconds). So a lock handle judges each
403 by what it has seen of that verb on its own object:

- the verb has worked before through this handle: transient (`LockError`, retried);
- it never has, and the 403s have not yet persisted for `FORBIDDEN_GRACE_SECONDS` (counted
  on trio's clock from the first 403 of an unbroken streak): transient too;
- it never has, and they have: a missing permission; the `ForbiddenError` comes out
  unchanged (with the RBAC rule to grant).

Each streak is logged once (WARNING), and its end once (INFO).

Memory is kept per lock handle, not per client: RBAC can grant a verb on some object names
only (``resourceNames``), so only a success on this very object proves the permission for
it. A handle is one candidate's access to one object through one client (one set of
credentials).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .._exceptions import LockError

if TYPE_CHECKING:
    from .._kube._errors import ForbiddenError

__all__ = ["FORBIDDEN_GRACE_SECONDS", "Permissions"]

logger = logging.getLogger("trio_election")

FORBIDDEN_GRACE_SECONDS = 15.0
"""How long 403s for a verb that has never worked are retried before they are taken as a
missing permission (seconds; the default lease duration). Read at each 403, so a test may
change it."""


@dataclass(slots=True)
class _Streak:
    since: float
    """trio time of the first 403 of the streak."""
    count: int = 0
    warned: bool = False


class Permissions:
    """What one lock handle has been allowed to do, and the 403s it has had since, per verb."""

    __slots__ = ("_description", "_streaks", "_worked")

    def __init__(self, description: str) -> None:
        self._description = description
        self._worked: set[str] = set()
        self._streaks: dict[str, _Streak] = {}

    def has_worked(self, verb: str) -> bool:
        """Whether `verb` has ever got past RBAC through this handle."""
        return verb in self._worked

    def worked(self, verb: str) -> None:
        """Note that a request of `verb` got past RBAC (any answer but 401, 403, 429, 5xx)."""
        self._worked.add(verb)
        streak = self._streaks.pop(verb, None)
        if streak is not None and streak.warned:
            logger.info(
                "%s: %s is allowed again, after %d refusal(s) (403) in %.3g s",
                self._description,
                verb,
                streak.count,
                trio.current_time() - streak.since,
            )

    def persisted(self, verb: str) -> float:
        """For how long (seconds) `verb` has been refused without a success in between."""
        streak = self._streaks.get(verb)
        return 0.0 if streak is None else trio.current_time() - streak.since

    def judge(self, verb: str, exc: ForbiddenError) -> LockError | None:
        """The `LockError` to raise instead of `exc` while the 403 may heal, or None when it
        is a missing permission (`verb` never worked and the grace window has passed)."""
        now = trio.current_time()
        streak = self._streaks.get(verb)
        if streak is None:
            streak = self._streaks[verb] = _Streak(since=now)
        streak.count += 1
        grace = FORBIDDEN_GRACE_SECONDS
        if verb in self._worked:
            if not streak.warned:
                streak.warned = True
                logger.warning(
                    "%s: 403 on %s, which has worked before through this handle: retrying "
                    "(an API server that has just started refuses requests until its RBAC "
                    "caches are filled; if the Role or RoleBinding was removed, restore it): %s",
                    self._description,
                    verb,
                    exc.message,
                )
            return LockError(
                f"{self._description}: {verb} refused (403) after it had worked; retried: "
                f"{exc.message}"
            )
        if now - streak.since < grace:
            if not streak.warned:
                streak.warned = True
                logger.warning(
                    "%s: 403 on %s; it will be retried for up to %.3g s in case the API "
                    "server has just started; grant %s on %s if this persists: %s",
                    self._description,
                    verb,
                    grace,
                    verb,
                    exc.resource or "the lock's resource",
                    exc.message,
                )
            lasted = f" for {now - streak.since:.3g} s" if now > streak.since else ""
            return LockError(
                f"{self._description}: {verb} refused (403){lasted}; retried for up to "
                f"{grace:.3g} s: {exc.message}"
            )
        return None
