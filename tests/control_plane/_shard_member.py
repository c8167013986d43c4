"""A member of a shard group that prints what happens to it, one line per event.

    python _shard_member.py GROUP IDENTITY SHARDS [LEASE RENEW RETRY]
                                                (KUBECONFIG: the account to use)

Stdout: the event lines of `harness.event_lines`: ``started-leading`` and
``stopped-leading`` with the shard number as argument (when its work starts and when it
has unwound), ``owned`` with the owned shards (comma-separated) at each change. Timings
are short by default (lease 10 s, renew deadline 7 s, retry 2 s) so that a crash is taken in
seconds.
SIGTERM leaves the group and releases every shard (exit status 143).
"""

from __future__ import annotations

import json
import logging
import sys
import time

import trio

import trio_election as te

LEASE, RENEW, RETRY = 10.0, 7.0, 2.0


def emit(kind: str, arg: str) -> None:
    print(f"{time.monotonic()} {kind} {json.dumps(arg)}", flush=True)


async def main(group: str, identity: str, shards: int, timings: tuple[float, float, float]) -> None:
    lease, renew, retry = timings

    async def work(shard: int, leadership: te.Leadership) -> None:
        emit("started-leading", str(shard))
        try:
            await trio.sleep_forever()
        finally:
            emit("stopped-leading", str(shard))

    async with te.open_shards(
        group,
        shards=shards,
        identity=identity,
        lease_duration=lease,
        renew_deadline=renew,
        retry_period=retry,
    ) as members:

        async def report() -> None:
            async for owned in members.changes():
                emit("owned", ",".join(str(i) for i in sorted(owned)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(report)
            await members.serve(work)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    given = tuple(float(arg) for arg in sys.argv[4:7])
    timings = (given[0], given[1], given[2]) if len(given) == 3 else (LEASE, RENEW, RETRY)
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), timings)
