"""The elections of this process, by lock: who else here writes the lock, who campaigns where.

Two things need to know every election of the process, not only their own:

- the judgement of a record that names our identity: was it written by this election, by
  another election of this process (two elections that share one identity), or by another
  process? (`Registry.writer_of`);
- the rule against nesting: a task that leads a lock (or campaigns for it) may not
  campaign for the same lock again inside that campaign or term. The inner campaign would
  wait forever for the lock that the outer term holds and will not release before the
  inner one returns. Two separate tasks of one process on one lock are two candidates like
  any others and stay allowed (`campaigning`), even a task started from inside a term:
  whether the term waits for it (a nursery opened inside the block) or not (a nursery
  that outlives the term, as a stand-by), it cannot be told from here.

A lock is known by a key that the lock layer gives (`lock_key`): the same object for two
handles on one lock.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, final

import anyio

if TYPE_CHECKING:
    from collections.abc import Generator, Hashable

    from ._lock import Observation

__all__ = ["Member", "campaigning", "lock_key", "registry"]


def lock_key(handle: object) -> Hashable:
    """What identifies the lock behind `handle` in this process: its ``lock_key`` when it
    has one (two handles on one lock give equal keys), else the handle itself."""
    key = getattr(handle, "lock_key", None)
    return handle if key is None else key  # pyright: ignore[reportUnknownVariableType]


class Member(Protocol):
    """An election as the registry sees it."""

    @property
    def identity(self) -> str: ...

    @property
    def description(self) -> str:
        """The election in a few words, for errors: its identity and lock."""
        ...

    def wrote(self, obs: Observation) -> bool:
        """True when `obs` holds a record this election wrote."""
        ...


@final
class Registry:
    """The live elections of this process, by lock key (weakly: a dropped one leaves)."""

    __slots__ = ("_members",)

    def __init__(self) -> None:
        self._members: dict[Hashable, weakref.WeakSet[Member]] = {}

    @contextmanager
    def joined(self, key: Hashable, member: Member) -> Generator[None]:
        """`member` counts as an election of this process on `key` while inside."""
        members = self._members.setdefault(key, weakref.WeakSet())
        members.add(member)
        try:
            yield
        finally:
            members.discard(member)
            if not members:
                self._members.pop(key, None)

    def writer_of(self, key: Hashable, obs: Observation, asking: Member) -> Member | None:
        """Another live election of this process on `key` that wrote `obs`, if any."""
        for member in list(self._members.get(key, ())):
            if member is not asking and member.wrote(obs):
                return member
        return None


registry = Registry()
"""The one registry of the process."""


@dataclass(slots=True, eq=False)
class _Campaign:
    key: Hashable
    member: Member
    task: int
    """The id of the task that campaigns (`anyio.get_current_task()`)."""
    active: bool = field(default=True)


_CAMPAIGNS: contextvars.ContextVar[tuple[_Campaign, ...]] = contextvars.ContextVar(
    "trio_election_campaigns", default=()
)
"""The campaigns and terms the current task is inside (tasks started inside inherit a copy,
which names the task that campaigns: a different one)."""


@contextmanager
def campaigning(key: Hashable, member: Member) -> Generator[None]:
    """Mark the current task as campaigning for (then leading) `key` while inside.

    Raises `RuntimeError` naming both elections when the task is already inside a
    campaign or a term on the same lock (a nested election, which could never win).
    """
    task = anyio.get_current_task().id
    for outer in _CAMPAIGNS.get():
        if outer.active and outer.task == task and outer.key == key:
            raise RuntimeError(
                f"nested election: {member.description} campaigns inside the campaign or term "
                f"of {outer.member.description} on the same lock, in the same task; it would "
                f"wait forever for the lock the outer election holds. Lead the lock once, or "
                f"campaign from a separate task"
            )
    campaign = _Campaign(key, member, task)
    token = _CAMPAIGNS.set((*_CAMPAIGNS.get(), campaign))
    try:
        yield
    finally:
        campaign.active = False  # tasks started inside keep a copy: it no longer counts
        with contextlib.suppress(ValueError):  # left in another context: the flag suffices
            _CAMPAIGNS.reset(token)
