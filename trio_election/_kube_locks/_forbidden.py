"""Telling a 403 (or a 401) that will heal from a missing permission (or bad credentials).

A single 403 is not proof that a verb is missing: an apiserver that has just (re)started
answers 403 to users with the right bindings until its RBAC caches are filled (measured: 403
at +2.339 s, 200 at +2.363 s after start; up to a few seconds). A single 401 is not proof of
bad credentials either: a rotated service-account token is re-read by the client after a
401. So a lock handle judges each refusal by what it has seen on its own object:

- refusals that have not yet persisted for `FORBIDDEN_GRACE_SECONDS` (counted on the event loop's
  clock from the first refusal of an unbroken streak; a streak ends with a success, or
  after a quiet gap of four windows, except a watch's or a patch's) are transient:
  `LockError`, retried;
- refusals that have: the error comes out unchanged (a `ForbiddenError` naming the RBAC
  rule to grant, an `UnauthorizedError`).

A 403 for a verb that has worked before through this handle is most likely an apiserver
warming up (or a Role just removed): its WARNING says so. 401s are judged as one streak for
every verb (credentials are not per verb), ended by any success.

A 401 before anything has worked through this handle is final at once, with no grace: the
client has already read the credentials again (token file, exec plugin) and retried once
before it raised, so these are the credentials as they are now, refused. A token that is
being rotated does not look like this: kubelet writes the new token while the old one is
still valid, and a client only ever sends one that was valid when written. The grace is
for 401s after a success: a token rotated away mid-term, read again on the next tries.
Waiting 15 s at start to report a mistyped token helps nobody.

Each streak is logged once (WARNING), and its end once (INFO).

Memory is kept per lock handle, not per client: RBAC can grant a verb on some object names
only (``resourceNames``), so only a success on this very object proves the permission for
it. A handle is one candidate's access to one object through one client (one set of
credentials).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .._core._exceptions import LockError

if TYPE_CHECKING:
    from .._kube._errors import ApiError

__all__ = ["FORBIDDEN_GRACE_SECONDS", "Permissions"]

logger = logging.getLogger("trio_election")

FORBIDDEN_GRACE_SECONDS = 15.0
"""How long 403s (or 401s) are retried before they are taken as a missing permission (or
bad credentials): seconds, the default lease duration. Read at each refusal, so a test may
change it."""

QUIET_GAP_WINDOWS = 4
"""A streak also ends after this many grace windows without a refusal (the verb was not
tried meanwhile): an old refusal must not make a new one fatal at once. Longer than the
engine's retry interval of a read or a write, so a refusal that lasts is not split into new
streaks (see `GAPLESS_VERBS` for the watch)."""

GAPLESS_VERBS = frozenset({"watch", "patch"})
"""Verbs whose streak only a success ends, however long the verb was not tried.

A watch: after a few failed watches the engine polls for a while (30 poll delays: 60-132 s
at the defaults, more than the quiet gap) before it watches again; with a gap, every such
try would start a new streak, and a watch that is never allowed would never be taken as
such. Taking a watch's refusal for a missing permission costs nothing that the gap would
spare: the engine polls (`WatchUnavailable`) and tries to watch again later.

A patch: once its refusals have lasted the window, the handle writes with ``PUT`` and tries
``PATCH`` again only every ``PATCH_RETRY_SECONDS`` (minutes, more than the quiet gap). With
a gap, each such try would start a new streak and be retried as a transient error for the
whole window, longer than the renew deadline: a leader whose Role lost ``patch`` would lose
its term at every try."""

AUTHENTICATE = "authenticate"
"""The streak key of 401s: one for every verb."""


@dataclass(slots=True)
class _Streak:
    since: float
    """Event-loop time of the first refusal of the streak."""
    last: float
    """Event-loop time of the latest refusal."""
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
        for key in (verb, AUTHENTICATE):
            streak = self._streaks.pop(key, None)
            if streak is not None and streak.warned:
                logger.info(
                    "%s: %s is allowed again, after %d refusal(s) (%s) in %.3g s",
                    self._description,
                    verb,
                    streak.count,
                    "401" if key == AUTHENTICATE else "403",
                    anyio.current_time() - streak.since,
                )

    def persisted(self, verb: str) -> float:
        """For how long (seconds) `verb` has been refused without a success in between."""
        streak = self._streaks.get(verb)
        return 0.0 if streak is None else anyio.current_time() - streak.since

    def judge(self, verb: str, exc: ApiError) -> LockError | None:
        """The `LockError` to raise instead of `exc` (a 403 for `verb`, or a 401) while it
        may heal, or None when it has persisted for the grace window."""
        now = anyio.current_time()
        grace = FORBIDDEN_GRACE_SECONDS
        key = AUTHENTICATE if exc.status == 401 else verb
        streak = self._streaks.get(key)
        gap = math.inf if key in GAPLESS_VERBS else QUIET_GAP_WINDOWS * grace
        if streak is None or now - streak.last > gap:
            streak = self._streaks[key] = _Streak(since=now, last=now)
        streak.count += 1
        streak.last = now
        if now - streak.since >= grace:
            return None
        if key == AUTHENTICATE and not self._worked:
            return None  # refused before any success: final at once (module docstring)
        if not streak.warned:
            streak.warned = True
            logger.warning("%s: %s", self._description, self._why(key, verb, exc, grace))
        lasted = f" for {now - streak.since:.3g} s" if now > streak.since else ""
        if key == verb and verb in self._worked:
            return LockError(
                f"{self._description}: {verb} refused ({exc.status}) after it had worked"
                f"{lasted}; retried: {exc.message}"
            )
        return LockError(
            f"{self._description}: {verb} refused ({exc.status}){lasted}; retried for up to "
            f"{grace:.3g} s: {exc.message}"
        )

    def _why(self, key: str, verb: str, exc: ApiError, grace: float) -> str:
        if key == AUTHENTICATE:
            return (
                f"401 on {verb}: the API server refused the credentials; retrying for up to "
                f"{grace:.3g} s (a rotated token is read again); if this persists, fix the "
                f"kubeconfig's user or the service account token: {exc.message}"
            )
        if verb in self._worked:
            return (
                f"403 on {verb}, which has worked before through this handle: retrying for up "
                f"to {grace:.3g} s (an API server that has just started refuses requests until "
                f"its RBAC caches are filled; if the Role or RoleBinding was removed, restore "
                f"it): {exc.message}"
            )
        return (
            f"403 on {verb}; it will be retried for up to {grace:.3g} s in case the API "
            f"server has just started; grant {verb} on {exc.resource or 'the lock resource'} "
            f"if this persists: {exc.message}"
        )
