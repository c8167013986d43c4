"""The command form's worker for a shard group: a program that knows nothing of elections.

`trio-election run --shards S LOCK -- python shard_worker.py` starts one of it for each
shard the replica leads, with TRIO_ELECTION_SHARD (0 .. S - 1), TRIO_ELECTION_SHARDS (S),
TRIO_ELECTION_TERM and TRIO_ELECTION_LOCK (the shard's Lease) in its environment, and
sends it SIGTERM before the shard moves (SIGKILL after --grace).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType


def stop(signum: int, frame: FrameType | None) -> None:
    print(f"worker {os.environ['TRIO_ELECTION_SHARD']}: SIGTERM, finishing up", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    shard, shards = os.environ["TRIO_ELECTION_SHARD"], os.environ["TRIO_ELECTION_SHARDS"]
    lock, term = os.environ["TRIO_ELECTION_LOCK"], os.environ["TRIO_ELECTION_TERM"]
    print(f"worker {shard}: leading shard {shard} of {shards} ({lock}, term {term})", flush=True)
    while True:
        # the keys of shard `shard`: e.g. those whose hash modulo `shards` is `shard`
        print(f"worker {shard}: working", flush=True)
        time.sleep(5)
