"""`leadership.fence` on every face, and what it stamps (in virtual time, on `MemoryLock`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest
import trio

import trio_election as te

if TYPE_CHECKING:
    import trio.testing

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def held_before(transitions: int) -> te.MemoryLock:
    """A lock whose record a departed holder released after `transitions` changes."""
    lock = te.MemoryLock("app")
    lock.put_record(te.LeaderRecord("", 1, NOW, NOW, transitions))
    return lock


async def test_elect_gives_the_terms_fence(autojump_clock: trio.testing.MockClock) -> None:
    lock = held_before(6)
    async with te.elect(lock, identity="me", stop_on_sigterm=False) as leadership:
        assert leadership.fence == te.Fence(lock="memory/app", holder="me", term=7)
        # the term is the record's transitions count our acquiring write set
        assert lock.observe().record is not None
        assert leadership.fence.term == lock.observe().record.leader_transitions  # type: ignore[union-attr]


async def test_every_term_has_a_new_fence(autojump_clock: trio.testing.MockClock) -> None:
    lock = held_before(0)
    fences: list[te.Fence] = []
    async with te.open_election(lock, identity="me", stop_on_sigterm=False) as election:
        for _ in range(3):
            async with election.leading() as leadership:
                fences.append(leadership.fence)
    # the same holder's next term is a new fence too: its old writes are refused
    assert [f.term for f in fences] == [1, 2, 3]
    assert {f.holder for f in fences} == {"me"}


async def test_the_client_go_face_gives_the_fence(autojump_clock: trio.testing.MockClock) -> None:
    lock = held_before(2)
    seen: list[te.Fence] = []

    async def started(leadership: te.Leadership) -> None:
        seen.append(leadership.fence)

    elector = te.LeaderElector(
        te.ElectionConfig(
            lock=lock, identity="go", callbacks=te.LeaderCallbacks(started, lambda: None)
        )
    )
    await elector.run()
    assert seen == [te.Fence("memory/app", "go", 3)]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_fence_under_both_runtimes(anyio_backend: str) -> None:
    lock = held_before(4)
    async with te.elect(lock, identity="me", stop_on_sigterm=False) as leadership:
        await anyio.lowlevel.checkpoint()
        assert leadership.fence == te.Fence("memory/app", "me", 5)


def test_stamp_adds_the_label_and_annotations_and_keeps_the_rest() -> None:
    fence = te.Fence("leases/team/my-app", "pod-1", 12)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"app": "a"}, "annotations": {"note": "n"}},
        "data": {"k": "v"},
    }
    stamped = fence.stamp(manifest)
    assert stamped == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "x",
            "labels": {"app": "a", "trio-election.io/fence": "leases.team.my-app"},
            "annotations": {
                "note": "n",
                "trio-election.io/holder": "pod-1",
                "trio-election.io/term": "12",
            },
        },
        "data": {"k": "v"},
    }
    assert manifest["metadata"] == {
        "name": "x",
        "labels": {"app": "a"},
        "annotations": {"note": "n"},
    }, "the argument is left as it was"
    assert fence.stamp({}) == {
        "metadata": {"labels": fence.labels, "annotations": fence.annotations}
    }
    # a stamped patch body replaces an older stamp
    older = te.Fence("leases/team/my-app", "pod-0", 11).stamp({})
    assert fence.stamp(older) == fence.stamp({})


def test_stamp_refuses_what_it_cannot_stamp() -> None:
    fence = te.Fence("leases/team/my-app", "pod-1", 12)
    with pytest.raises(TypeError, match="metadata is list"):
        fence.stamp({"metadata": []})
    with pytest.raises(TypeError, match=r"metadata\.labels of type str"):
        fence.stamp({"metadata": {"labels": "x"}})


@pytest.mark.parametrize(
    "lock",
    [
        "leases/default/my-app",
        "memory/memory",
        "endpoints/ns/a+leases/ns/a",
        "leases/" + "n" * 63 + "/" + "x" * 253,
        "memory/ü/",
    ],
)
def test_the_label_is_a_valid_label_value_and_names_the_lock(lock: str) -> None:
    label = te.Fence(lock, "me", 0).label
    assert len(label) <= 63
    assert LABEL_VALUE.fullmatch(label), label
    assert te.Fence(lock + "z", "me", 0).label != label
