"""Sharded leadership: rebalance times and Lease writes of a shard group of member processes.

For each shard count S and member count N: N member processes
(tests/control_plane/_shard_member.py, one `open_shards()` each) share S shards. Measured:

- start: the first member's start to every shard led with balance (each member ⌊S/N⌋ or
  ⌈S/N⌉ shards);
- Lease writes per minute in a steady state (PUT, PATCH, POST and DELETE on Leases from
  the apiserver's `apiserver_request_total`, its own writes taken off), against the
  expected (S + N) / retry_period per second;
- SIGTERM of one member, then a new member's start, then SIGKILL of another: the time from
  the signal (the process start for a join) to every shard led with balance over the
  members then in the group;
- the CPU of the members together and of etcd + kube-apiserver while the writes were
  measured.

The times come from the members' event lines (``started-leading``/``stopped-leading`` with
the shard, on the machine's monotonic clock), replayed in order: the moment the last start
made the map whole and even. A killed member's shards count as unled from its kill. Each
shard's terms also go into a `History`: two holders at once would be counted.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trio_election.testing import History, Interval

from ._load import lease_requests
from ._procs import REPO, Peer, Timing, proc_stat

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane

MEMBER = REPO / "tests" / "control_plane" / "_shard_member.py"
VERBS = ("get", "create", "update", "patch", "delete", "list", "watch")
WRITES = ("PUT", "PATCH", "POST", "DELETE")
_POLL = 0.05


def lease_writes(cp: ControlPlane) -> int:
    """Writes of Leases the apiserver has answered so far."""
    counts = lease_requests(cp.metrics())
    return sum(counts[verb] for verb in WRITES)


def own_writes(cp: ControlPlane, *, window: float) -> float:
    """The apiserver's own Lease writes per minute (it renews an identity Lease of its own),
    measured over `window` seconds with no member running."""
    before, at = lease_writes(cp), time.monotonic()
    time.sleep(window)
    return (lease_writes(cp) - before) * 60 / (time.monotonic() - at)


@dataclass
class ShardRun:
    shards: int
    members: int
    timing: dict[str, int]
    start: float | None = None
    """First member's start to every shard led with balance, s."""
    sigterm: float | None = None
    sigkill: float | None = None
    join: float | None = None
    writes_per_min: list[float] = field(default_factory=list[float])
    """Lease writes per minute, one figure per window, the apiserver's own taken off."""
    expected_per_min: float = 0.0
    """60 (S + N) / retry_period: each shard and each membership record once a retry."""
    lost: int = 0
    """Terms that ended while the writes were measured (none should)."""
    members_cpu: float = 0.0
    """CPU of the N members together while the writes were measured (1.0 = one core)."""
    server_cpu: float = 0.0
    """CPU of etcd and kube-apiserver meanwhile (1.0 = one core)."""
    overlaps: int = 0
    """Pairs of terms of one shard held by two members at once (none may be)."""
    error: str = ""


def _replay(peers: dict[str, Peer], killed: dict[str, float]) -> list[tuple[float, str, str, int]]:
    """Every member's starts and stops in time order; a kill ends the killed one's terms."""
    merged: list[tuple[float, str, str, int]] = []
    for name, peer in peers.items():
        merged.extend(
            (event.time, name, event.kind, int(event.arg))
            for event in list(peer.events)
            if event.kind in ("started-leading", "stopped-leading")
        )
        if name in killed:
            merged.append((killed[name], name, "killed", -1))
    merged.sort()
    return merged


def _balanced(owner: dict[int, str], names: set[str], shards: int) -> bool:
    if len(owner) != shards:
        return False
    counts = Counter(owner.values())
    n = len(names)
    even = all(shards // n <= c <= -(-shards // n) for c in counts.values())
    return set(counts) == names and even


def settled_at(
    peers: dict[str, Peer], killed: dict[str, float], names: set[str], shards: int, since: float
) -> float | None:
    """The first moment at or after `since` when every shard was led and the shards were
    spread evenly over `names`, from the events so far; None if it has not come yet."""
    owner: dict[int, str] = {}
    for when, name, kind, shard in _replay(peers, killed):
        if kind == "started-leading":
            owner[shard] = name
        elif kind == "stopped-leading":
            if owner.get(shard) == name:
                del owner[shard]
        else:
            owner = {s: n for s, n in owner.items() if n != name}
        if when >= since and _balanced(owner, names, shards):
            return when
    return None


def _wait_settled(
    peers: dict[str, Peer],
    killed: dict[str, float],
    names: set[str],
    shards: int,
    since: float,
    *,
    within: float,
) -> float | None:
    """`settled_at`, waiting up to `within` seconds for it; the time from `since`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = settled_at(peers, killed, names, shards, since)
        if found is not None:
            return found - since
        time.sleep(_POLL)  # the events arrive through the reader threads
    return None


def _overlaps(peers: dict[str, Peer], killed: dict[str, float], shards: int) -> int:
    histories = {i: History() for i in range(shards)}
    open_: dict[tuple[str, int], float] = {}
    for when, name, kind, shard in _replay(peers, killed):
        if kind == "started-leading":
            open_[name, shard] = when
        elif kind == "stopped-leading":
            start = open_.pop((name, shard), None)
            if start is not None:
                histories[shard].intervals.append(Interval(name, start, when))
        else:
            for key in [k for k in open_ if k[0] == name]:
                histories[key[1]].intervals.append(Interval(name, open_.pop(key), when))
    now = time.monotonic()
    for (name, shard), start in open_.items():
        histories[shard].intervals.append(Interval(name, start, now))
    return sum(len(h.overlaps()) for h in histories.values())


def run_shards(
    cp: ControlPlane,
    folder: Path,
    shards: int,
    members: int,
    *,
    timing: Timing,
    windows: int,
    window: float,
    own_per_min: float,
) -> ShardRun:
    """S shards over N member processes: start, steady writes, SIGTERM, SIGKILL, join."""
    result = ShardRun(
        shards,
        members,
        {"lease": timing.lease, "renew": timing.renew, "retry": timing.retry},
        expected_per_min=60 * (shards + members) / timing.retry,
    )
    namespace = cp.create_namespace("bench-shards")
    user = cp.user("members", namespace=namespace, verbs={"leases": VERBS})
    peers: dict[str, Peer] = {}
    killed: dict[str, float] = {}
    settle = 2 * timing.lease + 30.0 + shards * members * 0.05

    def start(name: str) -> Peer:
        args = [
            sys.executable,
            str(MEMBER),
            f"leases/{namespace}/work",
            name,
            str(shards),
            str(timing.lease),
            str(timing.renew),
            str(timing.retry),
        ]
        log = folder / f"shards-{shards}x{members}-{name}.log"
        peer = Peer("trio", name, args, log, env={"KUBECONFIG": str(user.kubeconfig)})
        peers[name] = peer
        return peer

    try:
        names = {f"m{i}" for i in range(members)}
        first = min(start(name).started_at for name in sorted(names))
        result.start = _wait_settled(peers, killed, names, shards, first, within=settle)
        if result.start is None:
            result.error = f"not balanced within {settle:g} s of the start"
            return result
        time.sleep(2 * timing.retry + 2.0)  # past the start-up reads and writes
        stops = sum(p.count("stopped-leading") for p in peers.values())
        members_cpu = sum(proc_stat(p.pid).cpu for p in peers.values())
        server_cpu = sum(proc_stat(pid).cpu for pid in cp.pids)
        before, at = lease_writes(cp), time.monotonic()
        began = at
        for _ in range(windows):
            time.sleep(window)  # the measurement window: a rate needs one
            now_writes, now = lease_writes(cp), time.monotonic()
            per_min = (now_writes - before) * 60 / (now - at) - own_per_min
            result.writes_per_min.append(max(0.0, per_min))
            before, at = now_writes, now
        spent = time.monotonic() - began
        result.members_cpu = (
            sum(proc_stat(p.pid).cpu for p in peers.values()) - members_cpu
        ) / spent
        result.server_cpu = (sum(proc_stat(pid).cpu for pid in cp.pids) - server_cpu) / spent
        result.lost = sum(p.count("stopped-leading") for p in peers.values()) - stops

        leaving = min(names)
        names.discard(leaving)
        sent = peers[leaving].send(signal.SIGTERM)
        result.sigterm = _wait_settled(peers, killed, names, shards, sent, within=settle)
        if result.sigterm is None:
            result.error = f"not balanced within {settle:g} s of the SIGTERM"
            return result
        # the join before the crash: a crashed member's record stays in the group until
        # it runs out, and a newcomer counts it as live for a lease_duration of its own
        joining = f"m{members}"
        names.add(joining)
        joined = start(joining).started_at
        result.join = _wait_settled(peers, killed, names, shards, joined, within=settle)
        if result.join is None:
            result.error = f"not balanced within {settle:g} s of the join"
            return result
        crashing = min(names)
        names.discard(crashing)
        killed[crashing] = peers[crashing].send(signal.SIGKILL)
        result.sigkill = _wait_settled(
            peers, killed, names, shards, killed[crashing], within=settle
        )
        if result.sigkill is None:
            result.error = f"not balanced within {settle:g} s of the SIGKILL"
    finally:
        for peer in peers.values():
            peer.kill()
        result.overlaps = _overlaps(peers, killed, shards)
    return result
