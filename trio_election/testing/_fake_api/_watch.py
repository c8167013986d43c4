"""The fake API's change history and its watch streams (JSON lines, as the apiserver sends).

Every change is kept as an `Event` with its revision and the event-loop time it happened; a watch
stream delivers the events after its cursor that concern it, `watch_lag` seconds late for a
user whose watches lag, and nothing while that user is partitioned.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

import anyio
import httpx

from ._objects import Kind, status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ._requests import Conditions

__all__ = ["Event", "EventLog", "WatchStream", "Watcher"]


@dataclass(frozen=True, slots=True)
class Event:
    revision: int
    resource: str
    namespace: str
    name: str
    type: str
    object: dict[str, Any]
    at: float
    """Event-loop time of the change."""


@dataclass(slots=True)
class Watcher:
    kind: Kind
    namespace: str
    name: str | None
    bookmarks: bool
    cursor: int
    user: str = ""
    ending: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def concerns(self, event: Event) -> bool:
        return (
            event.resource == self.kind.resource
            and event.namespace == self.namespace
            and (self.name is None or event.name == self.name)
        )


@final
class EventLog:
    """The history of changes, in revision order, searchable by revision."""

    __slots__ = ("_events", "_revisions")

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._revisions: list[int] = []

    def append(self, event: Event) -> None:
        self._events.append(event)
        self._revisions.append(event.revision)

    def after(self, revision: int) -> list[Event]:
        """The events with a revision above `revision`, oldest first."""
        return self._events[bisect.bisect_right(self._revisions, revision) :]

    def forget_up_to(self, revision: int) -> None:
        """Drop the events at or below `revision` (etcd compaction)."""
        cut = bisect.bisect_right(self._revisions, revision)
        del self._events[:cut]
        del self._revisions[:cut]


def due_events(
    w: Watcher, log: EventLog, revision: int, lag: float
) -> tuple[list[dict[str, Any]], float | None]:
    """The events `w` may receive now (advancing its cursor), and when the next one is due
    (None if none is waiting)."""
    found: list[dict[str, Any]] = []
    now = anyio.current_time()
    for event in log.after(w.cursor):
        if event.at + lag > now:
            return found, event.at + lag
        w.cursor = event.revision
        if w.concerns(event):
            found.append({"type": event.type, "object": copy.deepcopy(event.object)})
    w.cursor = max(w.cursor, revision)
    return found, None


@final
class WatchStream(httpx.AsyncByteStream):
    """A watch response body: JSON lines as the fake's state changes.

    An iterator object rather than an async generator, so that a client that stops reading
    early leaves nothing for the event loop to finalize.
    """

    def __init__(
        self,
        watcher: Watcher,
        deadline: float,
        *,
        log: EventLog,
        revision: Callable[[], int],
        conditions: Callable[[str], Conditions],
        changed: Callable[[], anyio.Event],
        forget: Callable[[Watcher], None],
    ) -> None:
        self._watcher = watcher
        self._deadline = deadline
        self._log = log
        self._revision = revision
        self._conditions = conditions
        self._changed = changed
        self._forget = forget
        self._lines: list[bytes] = []
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        w = self._watcher
        while True:
            if self._lines:
                return self._lines.pop(0)
            if self._done:
                self._forget(w)
                raise StopAsyncIteration
            changed = self._changed()
            conditions = self._conditions(w.user)
            wake_at = math.inf  # a partitioned stream hears nothing, not even its end
            if not conditions.partitioned:
                wake_at = self._deadline
                events, due = due_events(w, self._log, self._revision(), conditions.watch_lag)
                events = [*w.pending, *events]
                w.pending.clear()
                if events:
                    self._lines = [(json.dumps(e) + "\n").encode() for e in events]
                    continue
                if w.ending == "break":
                    self._done = True
                    self._forget(w)
                    raise httpx.ReadError("the fake API broke the watch connection")
                if w.ending == "expire":
                    gone = status(410, "Expired", "too old resource version")
                    self._lines = [(json.dumps({"type": "ERROR", "object": gone}) + "\n").encode()]
                    self._done = True
                    continue
                if w.ending is not None:
                    self._done = True
                    continue
                if due is not None:
                    wake_at = min(wake_at, due)
            with anyio.CancelScope(deadline=wake_at):
                await changed.wait()
            if anyio.current_time() >= self._deadline and not self._conditions(w.user).partitioned:
                self._done = True

    async def aclose(self) -> None:
        self._done = True
        self._forget(self._watcher)
