"""The library form of a shard group: every replica runs this program; together they
share the shards, each led by one replica at a time.

`te.open_shards()` joins the group; `serve()` runs `work(shard, leadership)` for each shard
this replica leads, and cancels it before the shard moves to another replica (a join, a
leave, a lost lease). SIGTERM (how Kubernetes stops a pod) leaves the group first, so the
others take its shards at once, cancels the work, releases every shard and exits with
status 143. The configuration is the pod's service account (or $KUBECONFIG outside a
cluster).
"""

from __future__ import annotations

import logging
import os

import trio

import trio_election as te

LOCK = os.environ.get("LOCK", "leases/my-app-shards-library")
SHARDS = int(os.environ.get("SHARDS", "16"))

log = logging.getLogger("app")


async def work(shard: int, leadership: te.Leadership) -> None:
    """The work of one shard: runs only while this replica leads it."""
    while True:
        log.info("working on shard %d of %d (term %d)", shard, SHARDS, leadership.term)
        await trio.sleep(5)


async def main() -> None:
    async with te.open_shards(LOCK, shards=SHARDS, events="my-app") as shards:
        await shards.serve(work)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(main)
