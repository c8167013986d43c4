"""Follow the leader and lead many terms with `open_election()`.

    python examples/follow_the_leader.py

A router task prints who leads whenever it changes; the main loop campaigns, leads a
term, steps down and campaigns again. Here two candidates share a MemoryLock; give a
string like "leases/default/my-app" to share a Kubernetes Lease instead.
"""

from __future__ import annotations

import trio

import trio_election as te


async def replica(lock: te.MemoryLock, name: str, terms: int) -> None:
    async with (
        te.open_election(
            lock, identity=name, lease_duration=4.0, renew_deadline=3.0, retry_period=1.0
        ) as election,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(route, election, name)
        for _ in range(terms):
            async with election.leading() as leadership:
                print(f"{name}: leading term {leadership.term}", flush=True)
                await trio.sleep(0.5)
            await trio.sleep(0.1)  # let the other replica have a turn
        nursery.cancel_scope.cancel()


async def route(election: te.Election, name: str) -> None:
    async for leader in election.changes():
        print(f"{name}: requests now go to {leader or 'nobody'}", flush=True)


async def main() -> None:
    lock = te.MemoryLock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(replica, lock, "replica-a", 2)
        nursery.start_soon(replica, lock, "replica-b", 2)


if __name__ == "__main__":
    trio.run(main)
