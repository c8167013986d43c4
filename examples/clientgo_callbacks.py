"""client-go's leaderelection API: LeaderElector with callbacks, as client-go users know it.

python examples/clientgo_callbacks.py
"""

from __future__ import annotations

import trio

import trio_election as te


async def on_started_leading(leadership: te.Leadership) -> None:
    print(f"started leading, term {leadership.term}", flush=True)
    await trio.sleep(1)  # the leader's work; cancelled if the lease is lost


def on_stopped_leading() -> None:
    print("stopped leading", flush=True)


def on_new_leader(identity: str) -> None:
    print(f"new leader: {identity or '(none)'}", flush=True)


async def main() -> None:
    config = te.ElectionConfig(
        lock=te.MemoryLock(),
        identity="example",
        lease_duration=4,
        renew_deadline=3,
        retry_period=1,
        callbacks=te.LeaderCallbacks(on_started_leading, on_stopped_leading, on_new_leader),
    )
    elector = te.LeaderElector(config)
    await elector.run()
    print(f"leader now: {elector.get_leader() or '(none)'}; is_leader={elector.is_leader()}")


if __name__ == "__main__":
    trio.run(main)
