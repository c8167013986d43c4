"""Several candidates for one Lease in one process, each with a `KubeClient` of its own.

    python benchmarks/_storm_candidates.py --kubeconfig K --lock leases/NS/NAME \
        --identities c0,c1,... [--lease-duration 15 --renew-deadline 10 --retry-period 2]

Each candidate campaigns with `open_election()` and `leading()`, term after term, its work
being to wait for ``release <identity>`` on stdin: then it leaves `leading()` (a release)
and campaigns again. Lines on stdout, as the peers print them (``<monotonic seconds>
<event> <JSON string>``), the argument of ``began``, ``ended`` and ``calls`` itself JSON
(``{"id": ..., "calls": {"<verb>/<outcome>": n}, "renewals": n, "leader": ...,
"watching": bool}``):

    ready "<n>"     every candidate has read the lock once
    began {...}     a term's work starts (its lock calls include the write that took it)
    ended {...}     a term's work ends, before the release
    calls {...}     a candidate's lock calls, leader or watch changed (looked at every 5 ms)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import trio

import trio_election as te
from trio_election.kube import KubeClient, KubeConfig

POLL = 0.005


def emit(event: str, arg: str) -> None:
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


def state(identity: str, election: te.Election) -> dict[str, Any]:
    stats = election.statistics()
    return {
        "id": identity,
        "calls": {f"{verb}/{outcome}": n for (verb, outcome), n in stats.requests.items()},
        "renewals": stats.renewals,
        "leader": election.leader or "",
        "watching": stats.watching,
    }


async def main(options: argparse.Namespace) -> None:
    config = KubeConfig.load(options.kubeconfig)
    identities: list[str] = options.identities.split(",")
    step_down = {identity: trio.Event() for identity in identities}
    ready = trio.Semaphore(0)

    async def candidate(identity: str) -> None:
        async with (
            KubeClient(config) as client,
            te.open_election(
                options.lock,
                identity=identity,
                client=client,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                stop_on_sigterm=False,
            ) as election,
        ):
            ready.release()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(report, identity, election)
                while True:
                    async with election.leading():
                        emit("began", json.dumps(state(identity, election)))
                        await step_down[identity].wait()
                        step_down[identity] = trio.Event()
                        emit("ended", json.dumps(state(identity, election)))

    async def report(identity: str, election: te.Election) -> None:
        last = ""
        while True:
            now = json.dumps(state(identity, election))
            if now != last:
                emit("calls", now)
                last = now
            await trio.sleep(POLL)

    async def commands() -> None:
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            word, _, identity = line.strip().partition(" ")
            if word == "release" and identity in step_down:
                step_down[identity].set()

    async with trio.open_nursery() as nursery:
        for identity in identities:
            nursery.start_soon(candidate, identity)
        for _ in identities:
            await ready.acquire()
        emit("ready", str(len(identities)))
        nursery.start_soon(commands)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--lock", required=True, help="e.g. leases/<namespace>/<name>")
    parser.add_argument("--identities", required=True, help="comma-separated")
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    trio.run(main, parser.parse_args())
