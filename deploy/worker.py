"""The command form's worker: a program that knows nothing of elections.

`trio-election run LOCK -- python worker.py` starts it only on the leader, with
TRIO_ELECTION_IDENTITY, TRIO_ELECTION_TERM and TRIO_ELECTION_LOCK in its environment, and
sends it SIGTERM when leadership ends (SIGKILL after --grace).
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
    print("worker: SIGTERM, finishing up", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    term = os.environ["TRIO_ELECTION_TERM"]
    print(f"worker: leading {os.environ['TRIO_ELECTION_LOCK']} (term {term})", flush=True)
    while True:
        print(f"worker: working (term {term})", flush=True)
        time.sleep(5)
