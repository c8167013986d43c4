"""Who should lead each shard: rendezvous hashing with bounded load, sticky to the holders.

Every member computes `assign(members, shards, holders)` from what all of them observe: the
live members of the group, the shard count, and the current holder of each shard lock.
The same inputs give the same answer on every member, in any order.

The rule, for N members and S shards (q, r = divmod(S, N)):

1. Quotas: the members ranked by a hash of their identity; the first r get q + 1 shards,
   the others q. So every member gets ⌊S/N⌋ or ⌈S/N⌉ shards.
2. Keep: a live member keeps the shards it holds, up to its quota; over quota, it keeps the
   ones it ranks highest (rendezvous score) and gives up the rest.
3. Fill: every other shard (free, held by a member that is gone, or given up), in shard
   order, goes to the member with room left that ranks it highest (rendezvous score of the
   pair ``(shard, member)``).

Why sticky: a function of the members and S alone cannot both balance exactly and move
few shards (greedy bounded-load rendezvous moves several times the minimum in about 40 %
of joins and leaves); keeping what is held makes a join or leave move at most
⌈S/N⌉ + 1 shards (N the larger of the two counts), which tests/shards/test_assign.py
checks over generated memberships. The answer is a fixed point (once the holders are the
answer, the answer stays), and the states in between (some moved shards released, some
taken) give the same answer, so a move never changes its aim half way.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["assign", "member_rank", "pair_score", "quotas"]


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def member_rank(identity: str) -> bytes:
    """Where a member stands in the quota order (lower first)."""
    return _digest(identity)


def pair_score(shard: int, identity: str) -> bytes:
    """How much `identity` wants `shard` (higher wins)."""
    return _digest(f"{shard}\0{identity}")


def quotas(members: Iterable[str], shards: int) -> dict[str, int]:
    """How many shards each member leads: ⌊S/N⌋ or ⌈S/N⌉, the larger to the first by rank."""
    order = sorted(set(members), key=lambda m: (member_rank(m), m))
    if not order:
        return {}
    q, r = divmod(shards, len(order))
    return {m: q + (1 if k < r else 0) for k, m in enumerate(order)}


def assign(
    members: Iterable[str], shards: int, holders: Mapping[int, str | None] | None = None
) -> tuple[str | None, ...]:
    """The target owner of each shard ``0 .. shards - 1`` (None for all when no members).

    `holders` maps a shard to its current holder (missing or None: free); a holder that is
    not among `members` counts as free.
    """
    quota = quotas(members, shards)
    if not quota:
        return (None,) * shards
    held: dict[str, list[int]] = {m: [] for m in quota}
    for shard, holder in (holders or {}).items():
        if holder in held and 0 <= shard < shards:
            held[holder].append(shard)
    owner: list[str | None] = [None] * shards
    room = dict(quota)
    for member, mine in held.items():
        mine.sort(key=lambda s: pair_score(s, member), reverse=True)
        for shard in mine[: quota[member]]:
            owner[shard] = member
            room[member] -= 1
    for shard in range(shards):
        if owner[shard] is None:
            best = max(
                (m for m, left in room.items() if left > 0),
                key=lambda m: (pair_score(shard, m), m),
            )
            owner[shard] = best
            room[best] -= 1
    return tuple(owner)
