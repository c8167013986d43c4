"""Errors that retrying cannot cure come out of the API unwrapped, with what to fix."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import JITTER_FACTOR
from trio_election._kube_locks._forbidden import FORBIDDEN_GRACE_SECONDS
from trio_election.kube import ForbiddenError
from trio_election.testing._fake_api import FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

RETRY = 2.0


class Forbidden(te.ElectionError):
    """Stands for a missing RBAC verb: not a LockError, so never retried."""


class Gatekeeper:
    """A lock handle over a MemoryLock that can start refusing every call for good."""

    def __init__(self, lock: te.MemoryLock) -> None:
        self.inner = lock.handle()
        self.refuse = False

    @property
    def description(self) -> str:
        return self.inner.description

    def _check(self, verb: str) -> None:
        if self.refuse:
            raise Forbidden(f'cannot {verb} leases: add the "{verb}" verb to the Role')

    async def get(self) -> te.Observation:
        self._check("get")
        return await self.inner.get()

    async def create(self, record: te.LeaderRecord) -> te.Observation:
        self._check("create")
        return await self.inner.create(record)

    async def update(self, record: te.LeaderRecord, based_on: te.Observation) -> te.Observation:
        self._check("update")
        return await self.inner.update(record, based_on)

    async def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        self._check("watch")
        async for obs in self.inner.watch(after):
            self._check("watch")
            yield obs


async def test_refused_first_read_comes_out_of_elect_unwrapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gatekeeper(te.MemoryLock())
    gate.refuse = True
    with pytest.raises(Forbidden, match='add the "get" verb'):
        async with te.elect(gate, identity="a"):
            pytest.fail("led without being allowed to read")


async def test_refusal_while_leading_ends_the_term_as_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gatekeeper(te.MemoryLock())
    with pytest.raises(te.LeadershipLost) as caught:
        async with te.elect(gate, identity="a"):
            await trio.sleep(3)
            gate.refuse = True
            await trio.sleep_forever()
    assert isinstance(caught.value.__cause__, Forbidden)
    assert trio.current_time() == 4  # the next renew found out; no waiting for the deadline


async def test_refusal_reaches_a_follower_waiting_in_leading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    gate = Gatekeeper(lock)
    async with te.elect(lock, identity="holder"):
        with pytest.raises(Forbidden):
            async with te.open_election(gate, identity="b") as election:
                assert election.leader == "holder"
                gate.refuse = True
                lock.put_record(te.LeaderRecord("holder", 15, None, None, 0))
                async with election.leading():
                    pytest.fail("led without being allowed to")


async def test_refusal_reaches_changes(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    gate = Gatekeeper(lock)
    seen: list[str | None] = []
    with pytest.raises(Forbidden):
        async with te.open_election(gate, identity="b") as election:
            async for leader in election.changes():
                seen.append(leader)
                gate.refuse = True
                lock.put_record(te.LeaderRecord("x", 15, None, None, 0))
    assert seen == [None]


async def test_missing_rbac_verb_comes_out_after_the_grace_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 403 is retried for a while (an apiserver that has just started refuses too), then
    comes out of elect() unwrapped, naming the verb to grant."""
    api = FakeKubeApi(verbs={"leases": {"create", "update"}})
    async with api.client(user="no-get") as client:
        with pytest.raises(ForbiddenError, match='cannot get resource "leases"') as caught:
            async with te.elect("leases/default/my-app", identity="a", client=client):
                pytest.fail("led without being allowed to read")
    assert 'Grant the "get" verb' in str(caught.value)
    waited = trio.current_time()
    assert FORBIDDEN_GRACE_SECONDS <= waited < FORBIDDEN_GRACE_SECONDS + 5  # + one retry


async def test_a_moment_of_403_at_start_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Refusals that end inside the grace window are retried a poll delay apart, and the
    candidate leads at its first read that is allowed. (When it leads depends on the
    jitter: four poll delays take 8 to 17.6 s, so it may well be past the window.)"""
    api = FakeKubeApi()
    api.fail_next(4, status=403)
    async with (
        api.client() as client,
        te.elect("leases/default/my-app", client=client, retry_period=RETRY),
    ):
        led = trio.current_time()
    gets = api.filter("get")
    assert [r.status for r in gets] == [403] * 4 + [404]
    assert gets[-2].at < FORBIDDEN_GRACE_SECONDS  # the refusals lasted a moment
    for refused, then in itertools.pairwise(gets):
        assert RETRY <= then.at - refused.at <= RETRY * (1 + JITTER_FACTOR)
    assert led == gets[-1].at
