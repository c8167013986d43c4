"""Public names show their public home: `trio_election.LeadershipLost` in a traceback and a
repr, not the private module it is defined in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["name_home"]


def name_home(module: str, objects: Iterable[Any]) -> None:
    """Set `__module__` of each class and function of this package in `objects` to
    `module`, the public module that exports it."""
    for obj in objects:
        if callable(obj) and getattr(obj, "__module__", "").startswith("trio_election."):
            obj.__module__ = module
