"""tests/peers/trio_candidate.py with a clock that runs faster or slower than real time.

    python tests/chaos/skewed_candidate.py --clock-rate 1.25 <trio_candidate.py's arguments>

Every election the candidate opens gets `ScaledClock(rate)`: it judges expiry, deadlines
and retries on a clock that runs `rate` times as fast as CLOCK_MONOTONIC. Its event lines
still carry real CLOCK_MONOTONIC times (the harness lays every process on that clock).
"""

from __future__ import annotations

import argparse
import functools
import runpy
import sys
from pathlib import Path

import trio_election as te
from trio_election.testing import ScaledClock

CANDIDATE = Path(__file__).resolve().parent.parent / "peers" / "trio_candidate.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clock-rate", type=float, required=True)
    options, rest = parser.parse_known_args()
    clock = ScaledClock(options.clock_rate)
    # the candidate calls te.open_election() at run time: give every call this clock
    te.open_election = functools.partial(te.open_election, clock=clock)
    sys.argv = [str(CANDIDATE), *rest]
    runpy.run_path(str(CANDIDATE), run_name="__main__")


if __name__ == "__main__":
    main()
