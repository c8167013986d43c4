"""A trio-election candidate as a process of its own, for the interop tests.

    python tests/peers/trio_candidate.py --kubeconfig K --lock leases/NS/NAME --identity ID \
        --lease-duration 4 --renew-deadline 3 --retry-period 1 [--runtime trio]

It campaigns with `open_election()` and `leading()` (again after a loss), its work being
to wait until cancelled. Each stdout line is ``<monotonic seconds> <event> <JSON string>``
(`time.monotonic()`, CLOCK_MONOTONIC on Linux: the clock the other peers print too):

    ready "<identity>"            the lock has been read once; campaigning starts
    started-leading "<identity>"  the leader's work starts
    term "<n>"                    the term (the record's transitions count) of that term
    stopped-leading "<identity>"  the work has unwound (cancelled, by loss or by a signal)
    lost "<reason>"               the term ended by loss (before campaigning again)
    new-leader "<holder>"         the holder changed ("" when free)
    exit "<reason>"               the election is closed (after the release); status 0

SIGTERM and SIGINT cancel the work; leaving `leading()` releases the lock, then the
process exits. `--runtime` picks the event loop: `trio.run` (the default), `asyncio.run`
(``asyncio``) or `uvloop.run` (``uvloop``); the code is the same on each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

import anyio
import trio

import trio_election as te
from trio_election.kube import KubeClient, KubeConfig

DESCRIPTION = (__doc__ or "").splitlines()[0]
RUNTIMES = ("trio", "asyncio", "uvloop")


def emit(event: str, arg: str) -> None:
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


async def campaign(options: argparse.Namespace) -> None:
    """Lead term after term until SIGTERM or SIGINT. SIGTERM needs no handler here:
    open_election() cancels the work, releases, and raises te.Terminated (status 143)."""
    config = KubeConfig.load(options.kubeconfig)
    identity: str = options.identity
    try:
        async with (
            KubeClient(config) as client,
            te.open_election(
                options.lock,
                identity=identity,
                client=client,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                on_leader_change=lambda holder: emit("new-leader", holder or ""),
            ) as election,
        ):
            emit("ready", identity)
            while True:
                async with election.leading() as leadership:
                    emit("started-leading", identity)
                    emit("term", str(leadership.term))
                    try:
                        await anyio.sleep_forever()  # the work: until cancelled
                    finally:
                        emit("stopped-leading", identity)
                if leadership.lost:
                    emit("lost", leadership.reason)
    except (te.Terminated, KeyboardInterrupt):
        emit("exit", "signal")
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--lock", required=True, help="e.g. leases/<namespace>/<name>")
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--runtime", choices=RUNTIMES, default="trio", help="the event loop")
    parser.add_argument("-v", "--verbose", action="store_true", help="DEBUG logs on stderr")
    options = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if options.verbose else logging.INFO,
        format="%(relativeCreated)8.0f %(name)s %(levelname)s %(message)s",
    )
    if options.runtime == "trio":
        trio.run(campaign, options)
    elif options.runtime == "asyncio":
        asyncio.run(campaign(options))
    else:
        import uvloop

        uvloop.run(campaign(options))


if __name__ == "__main__":
    main()
