"""The library form: every replica runs this program; one of them works at a time.

`te.elect()` waits until this replica holds the Lease, runs the block, and cancels it if
the Lease can no longer be held safely. SIGTERM (how Kubernetes stops a pod) cancels the
work, releases the Lease so that a standby leads at once, and exits with status 143.
The configuration is the pod's service account (or $KUBECONFIG outside a cluster).
"""

from __future__ import annotations

import logging
import os

import trio

import trio_election as te

LOCK = os.environ.get("LOCK", "leases/my-app-library")

log = logging.getLogger("app")


async def work(term: int) -> None:
    """The singleton's work: runs only on the leader, cancelled when leadership ends."""
    while True:
        log.info("working as the leader (term %d)", term)
        await trio.sleep(5)


async def main() -> None:
    while True:
        try:
            async with te.elect(LOCK, events="my-app") as leadership:
                await work(leadership.term)
        except te.LeadershipLost as exc:
            log.warning("%s; campaigning again", exc)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(main)
