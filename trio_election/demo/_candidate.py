"""One candidate of the cluster demo, as its own process.

It campaigns on a Kubernetes lock, leads until told to stop (SIGTERM: finish, release,
exit 143), and reports on stdout as JSON lines, each stamped with the system-wide monotonic
clock so that the parent can line up the reports of every candidate.
"""

from __future__ import annotations

import json
import time

import trio

import trio_election as te
from trio_election.kube import KubeClient, KubeConfig

__all__ = ["run_candidate"]


def _report(event: str, **fields: object) -> None:
    stamp = time.clock_gettime(time.CLOCK_MONOTONIC)
    print(json.dumps({"event": event, "t": stamp, **fields}), flush=True)


async def run_candidate(
    lock: str, identity: str, kubeconfig: str, timing: dict[str, float]
) -> None:
    client = KubeClient(KubeConfig.load(kubeconfig))
    # SIGTERM needs no handler here: open_election() cancels the work, releases the lock
    # and raises te.Terminated, which ends the process with status 143
    async with (
        client,
        te.open_election(
            lock,
            identity=identity,
            client=client,
            lease_duration=timing["lease_duration"],
            renew_deadline=timing["renew_deadline"],
            retry_period=timing["retry_period"],
        ) as election,
    ):
        _report("ready", identity=identity)
        while True:
            async with election.leading() as leadership:
                _report("leading", identity=identity, term=leadership.term)
                try:
                    await trio.sleep_forever()
                finally:
                    _report("stopped", identity=identity, lost=leadership.lost)
