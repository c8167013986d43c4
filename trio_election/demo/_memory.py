"""The demo's in-process form: candidates as tasks on one `MemoryLock`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

import trio_election as te
from trio_election._history import History

from ._timeline import Show

if TYPE_CHECKING:
    from trio_election._core._memory import MemoryLockHandle

__all__ = ["run_memory_demo"]


@dataclass
class _Candidate:
    identity: str
    handle: MemoryLockHandle
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    step_down: trio.Event = field(default_factory=trio.Event)


async def _candidate(
    candidate: _Candidate, history: History, show: Show, timing: dict[str, float]
) -> None:
    with candidate.scope:
        async with te.open_election(
            candidate.handle,
            identity=candidate.identity,
            lease_duration=timing["lease_duration"],
            renew_deadline=timing["renew_deadline"],
            retry_period=timing["retry_period"],
        ) as election:
            while True:
                async with election.leading() as leadership:
                    show(f"{candidate.identity} is LEADER (term {leadership.term})")
                    with history.leading(candidate.identity):
                        await candidate.step_down.wait()
                        candidate.step_down = trio.Event()
                    show(f"{candidate.identity} steps down and releases the lock")
                await trio.sleep(0.01)


async def run_memory_demo(candidates: int, timing: dict[str, float], seed: int) -> History:
    rng = random.Random(seed)
    lock = te.MemoryLock("demo")
    history = History()
    show = Show()
    show(
        f"{candidates} candidates on a MemoryLock; lease {timing['lease_duration']:g} s, "
        f"renew deadline {timing['renew_deadline']:g} s, retry {timing['retry_period']:g} s"
    )
    async with trio.open_nursery() as nursery:
        team = [_Candidate(f"candidate-{i}", lock.handle()) for i in range(candidates)]
        for member in team:
            nursery.start_soon(_candidate, member, history, show, timing)

        async def leader(other_than: _Candidate | None = None) -> _Candidate:
            while True:
                for member in team:
                    if member is not other_than and lock.observe().holder == member.identity:
                        return member
                await trio.sleep(0.01)

        current = await leader()
        await trio.sleep(2)
        show(f"KILL {current.identity}: its process stops answering, no release")
        current.handle.hang()
        current.scope.cancel()
        killed_at = trio.current_time()
        current = await leader(other_than=current)
        show(
            f"failover: {current.identity} took over {trio.current_time() - killed_at:.2f} s "
            f"after the kill (the lease had to run out)"
        )
        await trio.sleep(2)
        show(f"ask {current.identity} to step down gracefully")
        stepped_at = trio.current_time()
        current.step_down.set()
        current = await leader(other_than=current)
        show(
            f"handover: {current.identity} took over "
            f"{trio.current_time() - stepped_at:.2f} s after the release"
        )
        await trio.sleep(1 + rng.random())
        nursery.cancel_scope.cancel()
    return history
