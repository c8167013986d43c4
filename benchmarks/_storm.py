"""Writes at a graceful handover, with N followers watching one Lease from several processes.

A leader and N followers (`_storm_candidates.py`, each candidate with a `KubeClient` of its
own), spread over at most `PROCESSES` processes so that no one event loop reads every
watch; the leader is told to release, K times, the new leader being the next one told.
The writes are counted as tests/control_plane/test_handover_writes.py counts them
(`harness.handover_writes`), from the apiserver's PATCH count and the candidates' own
lock calls (their ``calls`` lines).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.handover_writes import Calls, handover_writes, lease_patches

from ._handover import VERBS
from ._procs import HERE, Peer, Timing

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from trio_election.testing import ControlPlane

PROCESSES = 10
"""At most this many candidate processes; the candidates are shared out among them."""


@dataclass
class StormResult:
    followers: int
    processes: int
    timing: Timing
    writes: list[int] = field(default_factory=list[int])
    """Per handover: the writes that took the lock, or tried to."""
    refused: list[int] = field(default_factory=list[int])
    seconds: list[float] = field(default_factory=list[float])
    """Per handover: the old leader's work ended (its release follows) -> the new one's began."""
    failures: list[str] = field(default_factory=list[str])


class _Fleet:
    """The latest state each candidate printed, and its terms."""

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = peers
        self.by_id: dict[str, Peer] = {}

    def _events(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return sorted(
            (e.time, json.loads(e.arg))
            for p in self.peers
            for e in list(p.events)
            if e.kind == kind
        )

    def states(self, until: float = math.inf) -> dict[str, dict[str, Any]]:
        """Each candidate's last state printed, as of `until` (monotonic seconds)."""
        return {arg["id"]: arg for t, arg in self._events("calls") if t <= until}

    def calls(self, until: float = math.inf) -> dict[str, Calls]:
        return {i: _calls(s) for i, s in self.states(until).items()}

    def terms(self) -> list[tuple[float, dict[str, Any]]]:
        return self._events("began")

    def ended(self, identity: str, since: float) -> tuple[float, dict[str, Any]] | None:
        found = [(t, a) for t, a in self._events("ended") if a["id"] == identity and t >= since]
        return found[0] if found else None

    def settled(self, holder: str) -> bool:
        return all(
            s["leader"] == holder and (i == holder or s["watching"])
            for i, s in self.states().items()
        )

    def nominated(self, until: float = math.inf) -> int:
        """Nominations written by the fleet, as of `until`."""
        return sum(
            n
            for c in self.calls(until).values()
            for (verb, out), n in c.items()
            if (verb, out) == ("nominate", "ok")
        )


def _calls(state: dict[str, Any]) -> Calls:
    found: Calls = Counter()
    for key, n in state["calls"].items():
        verb, _, outcome = key.partition("/")
        found[verb, outcome] = n
    return found


def _wait(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _counted(cp: ControlPlane, fleet: _Fleet) -> tuple[dict[str, Calls], Counter[str]]:
    """Every candidate's lock calls and the apiserver's PATCH count, with no call printed
    in between, nor just after (read again if one was)."""
    while True:
        calls = fleet.calls()
        patches = lease_patches(cp.metrics())
        time.sleep(0.03)  # past the candidates' next look at their calls
        if calls == fleet.calls():
            return calls, patches


def run_storm(
    cp: ControlPlane, folder: Path, followers: int, handovers: int, *, timing: Timing
) -> StormResult:
    """`handovers` graceful handovers on one Lease with `followers` followers."""
    namespace = cp.create_namespace("bench-storm")
    user = cp.user("storm", namespace=namespace, verbs={"leases": VERBS})
    identities = [f"c{i}" for i in range(followers + 1)]
    processes = min(PROCESSES, len(identities))
    result = StormResult(followers, processes, timing)
    peers: list[Peer] = []
    try:
        for p in range(processes):
            mine = identities[p::processes]
            args = [
                sys.executable,
                str(HERE / "_storm_candidates.py"),
                f"--kubeconfig={user.kubeconfig}",
                f"--lock=leases/{namespace}/storm",
                f"--identities={','.join(mine)}",
                f"--lease-duration={timing.lease}",
                f"--renew-deadline={timing.renew}",
                f"--retry-period={timing.retry}",
            ]
            peer = Peer(
                "storm",
                f"storm-{followers}-{p}",
                args,
                folder / f"storm-{followers}-{p}.log",
                stdin=True,
            )
            peers.append(peer)
        for peer in peers:
            if peer.wait_for("ready", within=120) is None:
                raise RuntimeError(f"{peer} did not start; see {folder}")
        fleet = _Fleet(peers)
        owner = {i: peers[n % processes] for n, i in enumerate(identities)}
        patience = 2 * timing.lease + 10
        if not _wait(lambda: bool(fleet.terms()), patience):
            result.failures.append("no leader")
            return result
        for _ in range(handovers):
            outcome = _handover(cp, fleet, owner, patience)
            if isinstance(outcome, str):
                result.failures.append(outcome)
                continue
            writes, refused, seconds = outcome
            result.writes.append(writes)
            result.refused.append(refused)
            result.seconds.append(seconds)
    finally:
        for peer in peers:
            peer.kill()
    return result


def _handover(
    cp: ControlPlane, fleet: _Fleet, owner: dict[str, Peer], patience: float
) -> tuple[int, int, float] | str:
    """One handover: its writes, refused writes and seconds, or what went wrong."""
    began_at, began = fleet.terms()[-1]
    holder: str = began["id"]
    nominated_at_term = fleet.nominated(until=began_at)
    # a successor named in this term, and the leader's renew since, so that no write of
    # the term is still to come
    if not _wait(lambda: fleet.nominated() > nominated_at_term and fleet.settled(holder), patience):
        return "no successor named"
    renewed = fleet.states()[holder]["renewals"]
    if not _wait(lambda: fleet.states()[holder]["renewals"] > renewed, patience):
        return "no renew"
    calls, before = _counted(cp, fleet)
    told = time.monotonic()
    owner[holder].tell(f"release {holder}")
    if not _wait(lambda: fleet.terms()[-1][0] > told, patience):
        return f"no new term within {patience:g} s"
    took_at, took = fleet.terms()[-1]
    new: str = took["id"]
    if not _wait(lambda: fleet.ended(holder, told) is not None, patience):
        return "no end of term printed"
    ended = fleet.ended(holder, told)
    assert ended is not None
    released_at, end_state = ended
    # once the new leader has renewed, every write of the handover is long done
    renewed = took["renewals"]
    if not _wait(
        lambda: fleet.states()[new]["renewals"] > renewed and fleet.settled(new), patience
    ):
        return "the new leader did not renew"
    now, after = _counted(cp, fleet)
    named = sum((now[i] - calls.get(i, Counter()) for i in now), Counter[tuple[str, str]]())
    found = handover_writes(
        before,
        after,
        old_renews=_calls(end_state) - calls[holder],
        new_renews=now[new] - _calls(took),
        named=named,
    )
    return found.writes, found.refused, took_at - released_at
