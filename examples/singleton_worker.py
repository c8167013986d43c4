"""A singleton worker: only the leader works; a stand-by takes over when it steps down.

    python examples/singleton_worker.py                       # two candidates, in memory
    python examples/singleton_worker.py leases/default/my-app # one candidate on Kubernetes

On Kubernetes run one copy per replica; the kubeconfig (or the pod's service account)
decides which cluster. SIGTERM (how Kubernetes stops a pod) cancels the work, releases the
lock so that a stand-by leads at once, and exits with status 143: `elect()` does that
itself. Ctrl-C does the same through trio's KeyboardInterrupt.
"""

from __future__ import annotations

import sys

import trio

import trio_election as te


async def work(name: str, rounds: int) -> None:
    for i in range(rounds):
        print(f"{name}: working, round {i}", flush=True)
        await trio.sleep(0.2)


async def candidate(lock: str | te.MemoryLock, name: str, rounds: int) -> None:
    async with te.elect(lock, identity=name, lease_duration=4, renew_deadline=3, retry_period=1):
        await work(name, rounds)
        print(f"{name}: done, releasing the lock", flush=True)


async def main(argv: list[str]) -> None:
    if argv:
        await candidate(argv[0], "worker", rounds=10**9)
        return
    lock = te.MemoryLock()
    async with trio.open_nursery() as candidates:
        candidates.start_soon(candidate, lock, "replica-a", 3)
        candidates.start_soon(candidate, lock, "replica-b", 3)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
