"""The events of a watch stream, decoded from its JSON lines as client-go's decoder does.

Each line of a watch response is one event, ``{"type": ..., "object": ...}``. An event
whose type is ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK`` and whose object is a
JSON object is a `WatchEvent`. An ``ERROR`` event carries a ``Status``: it is raised as the
`ApiError` of its code, as a response of that status would be (410, a version too old for
the apiserver to watch from, is `GoneError`: list again). Anything else is a broken stream:
`ApiConnectionError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeGuard, final

from ._errors import ApiConnectionError, error_from_status
from ._json import as_mapping

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = ["EventType", "WatchEvent", "decode_event"]

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]

_TYPES: Final = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


@final
@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change of one object, as the apiserver sent it.

    A ``BOOKMARK``'s object holds only its kind and ``metadata.resourceVersion``: the
    version that the watch has reached, to resume from."""

    type: EventType
    object: dict[str, Any]
    """The object as it is after the change (before it, for ``DELETED``)."""

    @property
    def name(self) -> str:
        """The object's ``metadata.name`` ("" when absent)."""
        name = _metadata(self.object).get("name")
        return name if isinstance(name, str) else ""

    @property
    def version(self) -> str:
        """The object's ``metadata.resourceVersion`` ("" when absent)."""
        version = _metadata(self.object).get("resourceVersion")
        return version if isinstance(version, str) else ""


def decode_event(
    line: str,
    *,
    path: str,
    params: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> WatchEvent:
    """The event on one line of the watch of `path`.

    Raises the `ApiError` of an ``ERROR`` event's status (`GoneError` for 410; any of
    `secrets` in its message masked), and `ApiConnectionError` for a line that is not a
    JSON event."""
    try:
        decoded = json.loads(line)
    except ValueError:
        raise ApiConnectionError(f"GET {path}: a watch event is not JSON") from None
    event = as_mapping(decoded)
    kind = None if event is None else event.get("type")
    obj = None if event is None else as_mapping(event.get("object"))
    if obj is not None and kind == "ERROR":
        raise error_from_status(obj, method="GET", path=path, params=params, secrets=secrets)
    if obj is None or not _known(kind):
        raise ApiConnectionError(f"GET {path}: malformed watch event {decoded!r}")
    return WatchEvent(kind, obj)


def _known(kind: object) -> TypeGuard[EventType]:
    return kind in _TYPES


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(obj.get("metadata")) or {}
