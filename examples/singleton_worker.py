"""A singleton worker: only the leader works; a stand-by takes over when it steps down.

    python examples/singleton_worker.py                       # two candidates, in memory
    python examples/singleton_worker.py leases/default/my-app # one candidate on Kubernetes

On Kubernetes run one copy per replica; the kubeconfig (or the pod's service account)
decides which cluster. SIGTERM (or Ctrl-C) ends the work and releases the lock, so a
stand-by leads at once.
"""

from __future__ import annotations

import signal
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
    async with trio.open_nursery() as nursery:

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_signal)
        if argv:
            await candidate(argv[0], "worker", rounds=10**9)
        else:
            lock = te.MemoryLock()
            async with trio.open_nursery() as candidates:
                candidates.start_soon(candidate, lock, "replica-a", 3)
                candidates.start_soon(candidate, lock, "replica-b", 3)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
