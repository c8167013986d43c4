"""The objects of one collection that carry one label, read from the collection's shared
watch (`_streams.listening`): no watch and no connection of their own.

`labelled_objects` yields snapshots, ``{name: object}``: the first at once, then one after
each change among them; a reader that is slow gets the latest state, not every step. When
the collection's watch cannot be shared it yields None, and the caller lists and watches
by label itself.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import anyio

from .._core._exceptions import LockError
from .._kube._json import as_mapping
from ._streams import listening

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from .._kube import KubeClient

__all__ = ["labelled_objects"]


@asynccontextmanager
async def labelled_objects(
    client: KubeClient, path: str, label: str, value: str
) -> AsyncGenerator[AsyncGenerator[dict[str, dict[str, Any]]] | None]:
    """Snapshots of the objects at `path` whose `label` is `value` (read only), or None
    when the collection's watch cannot be shared. The snapshots raise `LockError` when
    the shared watch ends (follow again with a new call)."""
    follower = _LabelFollower(label, value)
    async with listening(client, path, follower) as objects:
        yield None if objects is None else follower.snapshots(objects)


@final
class _LabelFollower:
    """A `Listener` that wakes its reader when an object with its label changes."""

    __slots__ = ("_changed", "_failure", "_label", "_value")

    def __init__(self, label: str, value: str) -> None:
        self._label = label
        self._value = value
        self._changed = anyio.Event()
        self._failure: tuple[str, float | None] | None = None

    def _matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        labels = as_mapping((as_mapping(obj.get("metadata")) or {}).get("labels")) or {}
        return labels.get(self._label) == self._value

    def saw(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self._matches(old) or self._matches(new):
            self._changed.set()

    def relisted(self) -> None:
        self._changed.set()

    def failed(self, message: str, retry_after: float | None) -> None:
        if self._failure is None:
            self._failure = (message, retry_after)
        self._changed.set()

    async def snapshots(
        self, objects: Mapping[str, dict[str, Any]]
    ) -> AsyncGenerator[dict[str, dict[str, Any]]]:
        while True:
            if self._failure is not None:
                message, retry_after = self._failure
                raise LockError(message, retry_after=retry_after)
            self._changed = anyio.Event()
            yield {name: obj for name, obj in objects.items() if self._matches(obj)}
            await self._changed.wait()
