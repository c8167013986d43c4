"""The assignment of shards to members (`_shards._assign.assign`), over generated memberships.

What every member relies on: the same inputs give the same owners on every member (in any
order); every shard has an owner and each member ⌊S/N⌋ or ⌈S/N⌉ shards; once the holders
are the answer it stays the answer; the states half way through a move give the same answer;
and one member joining or leaving a settled group moves at most ⌈S/N⌉ + 1 shards (N the
larger of the two counts).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_election._shards._assign import assign

if TYPE_CHECKING:
    import random

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
memberships = st.sets(names, min_size=1, max_size=12)
shard_counts = st.integers(min_value=1, max_value=300)


def settled(members: set[str], shards: int) -> tuple[str | None, ...]:
    """The owners once a group of `members` has settled from nothing."""
    owners = assign(members, shards)
    assert assign(members, shards, dict(enumerate(owners))) == owners
    return owners


def balanced(owners: tuple[str | None, ...], members: set[str]) -> bool:
    counts = Counter(owners)
    low, high = len(owners) // len(members), math.ceil(len(owners) / len(members))
    return set(counts) <= members and all(low <= counts[m] <= high for m in members)


@settings(deadline=None)
@given(memberships, shard_counts, st.randoms(use_true_random=False))
def test_every_member_computes_the_same_owners(
    members: set[str], shards: int, rng: random.Random
) -> None:
    holders = {s: rng.choice([*members, None, "gone"]) for s in range(shards)}
    listed = list(members)
    rng.shuffle(listed)
    shuffled = dict(rng.sample(list(holders.items()), len(holders)))
    assert assign(listed, shards, shuffled) == assign(sorted(members), shards, holders)


@settings(deadline=None)
@given(memberships, shard_counts, st.randoms(use_true_random=False))
def test_every_shard_is_owned_and_the_load_is_even(
    members: set[str], shards: int, rng: random.Random
) -> None:
    holders = {s: rng.choice([*members, None]) for s in range(shards)}
    owners = assign(members, shards, holders)
    assert None not in owners
    assert balanced(owners, members)
    # a fixed point: holding the answer keeps it
    assert assign(members, shards, dict(enumerate(owners))) == owners


@settings(deadline=None)
@given(memberships, names, shard_counts, st.booleans(), st.randoms(use_true_random=False))
def test_one_join_or_leave_moves_few_shards_and_aims_once(
    members: set[str], other: str, shards: int, leave: bool, rng: random.Random
) -> None:
    before = settled(members, shards)
    if leave and len(members) > 1:
        after_members = members - {rng.choice(sorted(members))}
    else:
        after_members = members | {other}
    target = assign(after_members, shards, dict(enumerate(before)))
    assert balanced(target, after_members)
    moved = sum(a != b for a, b in zip(before, target, strict=True))
    n = max(len(members), len(after_members))
    assert moved <= math.ceil(shards / n) + 1, (moved, shards, len(members), len(after_members))
    # half way: each moving shard still with its old holder, released, or already taken
    half = {
        s: old if old == new else rng.choice([old, None, new])
        for s, (old, new) in enumerate(zip(before, target, strict=True))
    }
    assert assign(after_members, shards, half) == target


@settings(deadline=None)
@given(
    memberships,
    shard_counts,
    st.lists(st.tuples(st.booleans(), names), min_size=1, max_size=8),
)
def test_a_schedule_of_joins_and_leaves_stays_within_the_bound(
    members: set[str], shards: int, steps: list[tuple[bool, str]]
) -> None:
    owners = settled(members, shards)
    for leave, name in steps:
        if leave and len(members) > 1:
            nxt = members - {sorted(members)[len(name) % len(members)]}
        else:
            nxt = members | {name}
        target = assign(nxt, shards, dict(enumerate(owners)))
        moved = sum(a != b for a, b in zip(owners, target, strict=True))
        assert moved <= math.ceil(shards / max(len(members), len(nxt))) + 1
        assert balanced(target, nxt)
        members, owners = nxt, target


def test_no_members_no_owners() -> None:
    assert assign([], 3) == (None, None, None)
