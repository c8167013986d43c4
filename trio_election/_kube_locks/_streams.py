"""The watch stream of one lock object: a watch of its own, or a share of one watch of its
whole collection that every lock of the process in that collection reads.

A handle watches its object with a field selector on its name: one long request, and so
one connection, per watching handle. When a second handle of the same `KubeClient` watches
an object of the same collection (many elections in one process, or several candidates of
one), the handles that open a watch from then on share one watch of the collection
instead: one connection and one stream for all of them (each connection held about 67 KiB;
docs/benchmarks.md). A handle's stream is the same either way: the events of its object,
newer than the version it gives, as the apiserver sends them.

What follows the whole collection (the members of a shard group, by their label) listens
to the shared watch instead (`listening`): it hears of every change and reads the latest
state of every object, on the same connection.

The shared watch starts with a LIST of the collection, so that it knows every object as of
one version, then watches from that version and keeps the latest state of each object. A
handle that joins is first given its object as known there, when that is newer than the
version it gives (or a ``DELETED`` event when the object is gone); then each later event
of its object.

- The stream's normal end (``timeoutSeconds``) is resumed from the last version seen; a 410
  Gone lists again and hands each handle its object when that changed.
- Any other failure ends the shared watch: each handle's stream raises `LockError`, as a
  broken watch of its own would, and the engine opens it again (a new shared watch).
- When the apiserver refuses to list or watch the whole collection (RBAC can grant the
  verbs on some names only, ``resourceNames``) or its versions are not numbers, handles
  watch their own objects, and sharing is tried again after `SHARE_RETRY_SECONDS`.
"""

from __future__ import annotations

import copy
import logging
import math
import weakref
from collections.abc import Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self, final

import anyio

from .._core._exceptions import LockError
from .._kube._errors import ForbiddenError, GoneError, TooManyRequestsError, UnauthorizedError
from .._kube._json import as_list, as_mapping
from .._kube._watch import WatchEvent
from ._detached import spawn_detached

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._kube import KubeClient

__all__ = [
    "SHARE_RETRY_SECONDS",
    "WATCH_TIMEOUT_SECONDS",
    "Listener",
    "listening",
    "object_events",
]

logger = logging.getLogger("trio_election")

WATCH_TIMEOUT_SECONDS = 300
"""How long the apiserver keeps one watch request open (its ``timeoutSeconds``)."""

SHARE_RETRY_SECONDS = 60.0
"""After the apiserver refused to list or watch a whole collection, how long its handles
watch their own objects before sharing is tried again (RBAC may have been warming up)."""

_WIND_DOWN_WITHIN = 1.0
"""How long the last lock to leave a shared watch waits for its stream to close."""


@asynccontextmanager
async def object_events(
    client: KubeClient, path: str, name: str, since: str
) -> AsyncGenerator[AsyncIterator[WatchEvent]]:
    """The watch events of object `name` in the collection at `path`, after version `since`
    (the apiserver's current state when `since` is empty).

    Raises what `KubeClient.watch` raises (`ApiError`, `GoneError` for a version too old,
    `ApiConnectionError`); a shared stream that breaks raises `LockError`. A stream of its
    own ends when the server ends it; a shared one does not. A stream of its own moves to
    the collection's shared watch when one starts (another handle came to watch in it),
    so that its connection closes; the events it gives go on the same.
    """
    collection = _collections(client).setdefault(path, _Collection())
    collection.watching += 1
    try:
        shared = None
        if since.isdigit() and (collection.watching > 1 or collection.live() is not None):
            shared = await collection.share(client, path)
        if shared is None:
            params = {
                "watch": "1",
                "fieldSelector": f"metadata.name={name}",
                **({"resourceVersion": since} if since else {}),
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
            }
            stream = _Stream(collection, name, client.watch(path, params=params), since)
        else:
            stream = _Stream(collection, name, None, since)
            stream.join(shared)
        try:
            yield stream
        finally:
            await stream.aclose()
    finally:
        collection.watching -= 1


@asynccontextmanager
async def listening(
    client: KubeClient, path: str, listener: Listener
) -> AsyncGenerator[Mapping[str, dict[str, Any]] | None]:
    """Follow the whole collection at `path` on its shared watch (started if need be):
    yields the watch's latest state of each object (read only; `listener` hears of each
    change), or None when the collection's watch cannot be shared (RBAC grants no list or
    watch of it, or its versions are not numbers)."""
    collection = _collections(client).setdefault(path, _Collection())
    collection.watching += 1
    try:
        shared = await collection.share(client, path)
        if shared is None:
            yield None
            return
        shared.listen(listener)
        if shared.ended:  # it failed before we joined: nothing more comes
            listener.failed(f"{path}: the shared watch ended", None)
        try:
            yield shared.objects_view
        finally:
            shared.unlisten(listener)
            if shared.ended:
                with anyio.move_on_after(_WIND_DOWN_WITHIN, shield=True):
                    await shared.finished.wait()
    finally:
        collection.watching -= 1


@final
class _Stream:
    """One handle's events: of a watch of its own (`own`) until the collection's shared
    watch starts, then of its share of that one."""

    __slots__ = (
        "_collection",
        "_moving",
        "_name",
        "_own",
        "_reader",
        "_scope",
        "_shared",
        "_since",
    )

    def __init__(
        self,
        collection: _Collection,
        name: str,
        own: AsyncGenerator[WatchEvent] | None,
        since: str,
    ) -> None:
        self._collection = collection
        self._name = name
        self._own = own
        self._since = int(since) if since.isdigit() else None
        """The version of the last event given, while versions are numbers (else None: a
        stream of its own then stays on its own)."""
        self._reader: _Reader | None = None
        self._shared: _Shared | None = None
        self._scope: anyio.CancelScope | None = None
        self._moving = False
        if own is not None and self._since is not None:
            collection.alone.add(self)

    def move(self) -> None:
        """Go on with the collection's shared watch, which has just listed the collection:
        the watch of its own stops at once, even while waiting for an event."""
        self._moving = True
        if self._scope is not None:
            self._scope.cancel()

    def join(self, shared: _Shared) -> None:
        assert self._since is not None
        self._shared = shared
        self._reader = shared.join(self._name, self._since)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        own = self._own
        if own is not None:
            if not self._moving:
                event: WatchEvent | None = None
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        event = await anext(own)
                    finally:
                        self._scope = None
                if event is not None:
                    if self._since is not None:
                        version = event.version
                        if version.isdigit():
                            self._since = max(self._since, int(version))
                        else:  # not comparable: this stream stays on its own
                            self._since = None
                            self._collection.alone.discard(self)
                    return event
            # moving: the watch of its own ends here, its connection closed (a response
            # left half-read is not kept alive)
            self._own = None
            self._collection.alone.discard(self)
            await own.aclose()
            shared = self._collection.live()
            if shared is None:  # it failed meanwhile: end, as a server's end does
                raise StopAsyncIteration
            self.join(shared)
        reader = self._reader
        assert reader is not None
        try:
            return await reader.receive.receive()
        except anyio.EndOfStream:
            if reader.failure is not None:
                message, retry_after = reader.failure
                raise LockError(message, retry_after=retry_after) from None
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stop the stream; the last handle to leave a shared watch waits for its
        connection to close, so that a client closed next finds nothing of it running."""
        self._collection.alone.discard(self)
        if self._own is not None:
            own, self._own = self._own, None
            await own.aclose()
        shared, reader = self._shared, self._reader
        if shared is not None and reader is not None:
            self._reader = None
            shared.leave(reader)
            if shared.ended:
                with anyio.move_on_after(_WIND_DOWN_WITHIN, shield=True):
                    await shared.finished.wait()


_by_client: weakref.WeakKeyDictionary[KubeClient, dict[str, _Collection]] = (
    weakref.WeakKeyDictionary()
)


def _collections(client: KubeClient) -> dict[str, _Collection]:
    found = _by_client.get(client)
    if found is None:
        found = _by_client[client] = {}
    return found


@final
class _Collection:
    """What one client knows of watching one collection."""

    __slots__ = ("alone", "refused_until", "shared", "watching")

    def __init__(self) -> None:
        self.watching = 0
        """Watch streams open on objects of the collection (shared or not)."""
        self.alone: set[_Stream] = set()
        """The streams on a watch of their own that move to a shared watch once it starts."""
        self.shared: _Shared | None = None
        self.refused_until = -math.inf

    def live(self) -> _Shared | None:
        shared = self.shared
        return shared if shared is not None and not shared.ended else None

    async def share(self, client: KubeClient, path: str) -> _Shared | None:
        """The shared watch, started if need be; None when handles must watch alone."""
        shared = self.live()
        if shared is None:
            if anyio.current_time() < self.refused_until:
                return None
            shared = self.shared = _Shared(client, path, self)
            spawn_detached(shared.run, name=f"shared watch of {path}")
        shared.waiting += 1
        try:
            await shared.started.wait()
        except BaseException:
            if not shared.readers and not shared.listeners and shared.waiting == 1:
                # nobody else is coming: stop it
                shared.stop()
            raise
        finally:
            shared.waiting -= 1
        return None if shared.ended else shared

    def refused(self, path: str, exc: Exception) -> None:
        if self.refused_until == -math.inf:
            logger.info(
                "%s: each lock watches its own object (%s); sharing is tried again in %g s",
                path,
                exc,
                SHARE_RETRY_SECONDS,
            )
        self.refused_until = anyio.current_time() + SHARE_RETRY_SECONDS


class _Unshareable(Exception):
    """The collection's versions cannot be compared: handles watch alone."""


class Listener(Protocol):
    """What follows a whole shared watch rather than one object (`_labelled.py`)."""

    def saw(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """An object changed from `old` to `new` (None: it was not there / is gone)."""

    def relisted(self) -> None:
        """The collection was listed again: any object may have changed."""

    def failed(self, message: str, retry_after: float | None) -> None:
        """The shared watch ended; nothing more comes."""


@dataclass(eq=False, slots=True)
class _Reader:
    """One handle's share: the events of its object newer than `since`."""

    name: str
    since: int
    send: MemoryObjectSendStream[WatchEvent]
    receive: MemoryObjectReceiveStream[WatchEvent]
    failure: tuple[str, float | None] | None = None

    def give(self, event: WatchEvent, version: int, *, first: bool) -> None:
        if version > self.since:
            self.since = version
            # readers of one object get copies: a lock handle keeps what it is given
            given = event if first else WatchEvent(event.type, copy.deepcopy(event.object))
            self.send.send_nowait(given)


@final
@dataclass(eq=False)
class _Shared:
    """One watch of a whole collection, read by every handle of one client watching in it."""

    client: KubeClient
    path: str
    collection: _Collection
    objects: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    """The latest state of each object, as of `position`."""
    position: int = 0
    readers: dict[str, list[_Reader]] = field(default_factory=dict[str, list[_Reader]])
    listeners: list[Listener] = field(default_factory=list[Listener])
    """Readers of the whole collection."""
    waiting: int = 0
    """Handles waiting for the LIST to join."""
    started: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)
    ended: bool = False
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def join(self, name: str, since: int) -> _Reader:
        send, receive = anyio.create_memory_object_stream[WatchEvent](math.inf)
        reader = _Reader(name, since, send, receive)
        self.readers.setdefault(name, []).append(reader)
        self._catch_up(reader)
        return reader

    def leave(self, reader: _Reader) -> None:
        reader.send.close()
        reader.receive.close()
        readers = self.readers.get(reader.name, [])
        if reader in readers:
            readers.remove(reader)
            if not readers:
                del self.readers[reader.name]
        self._stop_if_unread()

    @property
    def objects_view(self) -> Mapping[str, dict[str, Any]]:
        """The latest state of each object, following every listing (read only)."""
        return _ObjectsView(self)

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        self._stop_if_unread()

    def _stop_if_unread(self) -> None:
        if not self.readers and not self.listeners:
            self.stop()

    def stop(self) -> None:
        self.scope.cancel()
        self.ended = True

    def _catch_up(self, reader: _Reader) -> None:
        """Give `reader` its object as known now, if that is news to it."""
        obj = self.objects.get(reader.name)
        if obj is not None:
            event = WatchEvent("MODIFIED", obj)
            reader.give(event, _number(event.version), first=False)
        elif self.position >= reader.since:
            meta = {"name": reader.name, "resourceVersion": str(self.position)}
            reader.give(WatchEvent("DELETED", {"metadata": meta}), self.position, first=True)

    async def run(self) -> None:
        try:
            with self.scope:
                try:
                    await self._list()
                except (ForbiddenError, UnauthorizedError, _Unshareable) as exc:
                    self.collection.refused(self.path, exc)
                    return
                finally:
                    self.started.set()
                for stream in list(self.collection.alone):  # their watches close
                    stream.move()
                await self._follow()
        except Exception as exc:  # a detached task: each reader hears of it
            retry_after = exc.retry_after if isinstance(exc, TooManyRequestsError) else None
            self._fail(f"{self.path}: the shared watch failed: {exc}", retry_after)
        finally:
            self._fail(f"{self.path}: the shared watch ended", None)
            if self.collection.shared is self:  # it holds the client, the registry's key
                self.collection.shared = None
            self.started.set()
            self.finished.set()

    def _fail(self, message: str, retry_after: float | None) -> None:
        self.ended = True
        for listener in list(self.listeners):
            listener.failed(message, retry_after)
        for readers in self.readers.values():
            for reader in readers:
                if reader.failure is None:
                    reader.failure = (message, retry_after)
                reader.send.close()

    async def _list(self) -> None:
        listing = await self.client.request("GET", self.path)
        version = _number(_metadata(listing).get("resourceVersion"))
        items = as_list(listing.get("items"))
        if not version or items is None:
            raise _Unshareable("its versions are not numbers")
        objects: dict[str, dict[str, Any]] = {}
        for item in items:
            obj = as_mapping(item)
            name = None if obj is None else _metadata(obj).get("name")
            if obj is not None and isinstance(name, str) and name:
                objects[name] = obj
        self.objects, self.position = objects, version
        for readers in list(self.readers.values()):
            for reader in readers:
                self._catch_up(reader)
        for listener in list(self.listeners):
            listener.relisted()

    async def _follow(self) -> None:
        while True:
            params = {
                "watch": "1",
                "resourceVersion": str(self.position),
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
            }
            try:
                async with aclosing(self.client.watch(self.path, params=params)) as events:
                    async for event in events:
                        self._dispatch(event)
            except GoneError:  # at the start, or an ERROR event: the version is too old
                await self._list()

    def _dispatch(self, event: WatchEvent) -> None:
        version = _number(event.version)
        self.position = max(self.position, version)
        if event.type == "BOOKMARK":
            return
        name = event.name
        old = self.objects.get(name)
        if event.type == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = event.object
        for listener in self.listeners:
            listener.saw(old, None if event.type == "DELETED" else event.object)
        for i, reader in enumerate(self.readers.get(name, ())):
            reader.give(event, version, first=i == 0)


@final
class _ObjectsView(Mapping[str, dict[str, Any]]):
    __slots__ = ("_shared",)

    def __init__(self, shared: _Shared) -> None:
        self._shared = shared

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self._shared.objects[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shared.objects)

    def __len__(self) -> int:
        return len(self._shared.objects)


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return as_mapping(obj.get("metadata")) or {}


def _number(version: object) -> int:
    """A resource version as a number (0 when it is not one: never newer than any)."""
    return int(version) if isinstance(version, str) and version.isdigit() else 0
