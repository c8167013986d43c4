"""The demo: candidates elect a leader, the leader is killed, a follower takes over.

    python -m trio_election.demo            # in-process candidates on a MemoryLock
    python -m trio_election.demo --help

Each candidate leads with `elect()`-style terms; the demo shows every change of leader as
it happens, then a timeline of who led when. A crash (no release) is followed by a
takeover once the lease has run out; a graceful step-down hands over at once.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

import trio_election as te
from trio_election.testing._history import History, Interval

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


@dataclass
class _Candidate:
    identity: str
    handle: te.MemoryLockHandle
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    step_down: trio.Event = field(default_factory=trio.Event)


class _Show:
    def __init__(self) -> None:
        self._start = trio.current_time()

    def __call__(self, text: str) -> None:
        print(f"[{trio.current_time() - self._start:6.2f}s] {text}", flush=True)


async def _candidate(
    candidate: _Candidate, history: History, show: _Show, timing: dict[str, float]
) -> None:
    with candidate.scope:
        async with te.open_election(
            candidate.handle,
            identity=candidate.identity,
            lease_duration=timing["lease_duration"],
            renew_deadline=timing["renew_deadline"],
            retry_period=timing["retry_period"],
        ) as election:
            while True:
                async with election.leading() as leadership:
                    show(f"{candidate.identity} is LEADER (term {leadership.term})")
                    with history.leading(candidate.identity):
                        await candidate.step_down.wait()
                        candidate.step_down = trio.Event()
                    show(f"{candidate.identity} steps down and releases the lock")
                await trio.sleep(0.01)


async def _run_memory_demo(candidates: int, timing: dict[str, float], seed: int) -> History:
    rng = random.Random(seed)
    lock = te.MemoryLock("demo")
    history = History()
    show = _Show()
    show(
        f"{candidates} candidates on a MemoryLock; lease {timing['lease_duration']:g} s, "
        f"renew deadline {timing['renew_deadline']:g} s, retry {timing['retry_period']:g} s"
    )
    async with trio.open_nursery() as nursery:
        team = [_Candidate(f"candidate-{i}", lock.handle()) for i in range(candidates)]
        for member in team:
            nursery.start_soon(_candidate, member, history, show, timing)

        async def leader(other_than: _Candidate | None = None) -> _Candidate:
            while True:
                for member in team:
                    if member is not other_than and lock.observe().holder == member.identity:
                        return member
                await trio.sleep(0.01)

        current = await leader()
        await trio.sleep(2)
        show(f"KILL {current.identity}: its process stops answering, no release")
        current.handle.hang()
        current.scope.cancel()
        killed_at = trio.current_time()
        current = await leader(other_than=current)
        show(
            f"failover: {current.identity} took over {trio.current_time() - killed_at:.2f} s "
            f"after the kill (the lease had to run out)"
        )
        await trio.sleep(2)
        show(f"ask {current.identity} to step down gracefully")
        stepped_at = trio.current_time()
        current.step_down.set()
        current = await leader(other_than=current)
        show(
            f"handover: {current.identity} took over "
            f"{trio.current_time() - stepped_at:.2f} s after the release"
        )
        await trio.sleep(1 + rng.random())
        nursery.cancel_scope.cancel()
    return history


def timeline(intervals: Sequence[Interval], start: float, end: float, width: int = 60) -> str:
    """A text chart of who led when: one row per candidate."""
    names = sorted({iv.identity for iv in intervals})
    span = max(end - start, 1e-9)
    rows: list[str] = []
    for name in names:
        cells = [" "] * width
        for iv in intervals:
            if iv.identity != name:
                continue
            first = int((iv.start - start) / span * width)
            last = max(first + 1, int((iv.end - start) / span * width))
            for i in range(max(first, 0), min(last, width)):
                cells[i] = "#"
        rows.append(f"{name:>14} |{''.join(cells)}|")
    rows.append(f"{'':>14}  0s{'':>{width - 8}}{end - start:5.1f}s")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trio_election.demo", description=__doc__)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--lease-duration", type=float, default=4.0)
    parser.add_argument("--renew-deadline", type=float, default=3.0)
    parser.add_argument("--retry-period", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    timing = {
        "lease_duration": args.lease_duration,
        "renew_deadline": args.renew_deadline,
        "retry_period": args.retry_period,
    }

    async def run() -> None:
        start = trio.current_time()
        history = await _run_memory_demo(args.candidates, timing, args.seed)
        end = trio.current_time()
        print("\ntimeline (# = leading):")
        print(timeline(history.closed(end), start, end))
        history.assert_one_leader()
        print("never two leaders at once: checked over every interval above")

    logging.basicConfig(level=logging.WARNING, format="          log: %(message)s")
    trio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
