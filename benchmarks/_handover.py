"""Graceful handover (SIGTERM) and crash failover (SIGKILL) on one Lease per stream."""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trio_election._kube_locks._records import record_from_lease_spec

from ._procs import OURS, Peer, Timing, candidate_args

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane

VERBS = ("get", "create", "update", "patch", "watch", "list")
POOL = 3
"""Candidates on each Lease: the leader and two followers."""

quiet = threading.Lock()
"""Held while a candidate process starts (Python imports take a core for a second) and while
a graceful handover is measured, so that the one does not slow the other."""


@dataclass
class Samples:
    kind: str
    mode: str
    """graceful (SIGTERM) or crash (SIGKILL)."""
    timing: Timing
    after_signal: list[float] = field(default_factory=list[float])
    """Signal sent -> the successor's work starts, seconds."""
    after_renew: list[float] = field(default_factory=list[float])
    """The leader's last renew seen by an admin watch -> the successor's work starts."""
    failures: list[str] = field(default_factory=list[str])


class _Versions:
    """When each holder was last written, from an admin watch of one Lease."""

    def __init__(self, cp: ControlPlane, namespace: str, name: str) -> None:
        self.last_seen: dict[str, float] = {}
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = name
        self._client = cp.http_client()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = ""
        while not self._stopped.is_set():
            params = {
                "watch": "1",
                "fieldSelector": f"metadata.name={self._name}",
                "timeoutSeconds": "1",
            }
            if version:
                params["resourceVersion"] = version
            try:
                with self._client.stream("GET", self._path, params=params) as response:
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event: dict[str, Any] = json.loads(line)
                        obj = event.get("object", {})
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            version = obj["metadata"]["resourceVersion"]
                            record = record_from_lease_spec(obj.get("spec"))
                            if record is not None and record.holder_identity:
                                with self._lock:
                                    self.last_seen[record.holder_identity] = time.monotonic()
            except Exception:
                if self._stopped.wait(0.2):
                    return

    def last(self, holder: str) -> float | None:
        with self._lock:
            return self.last_seen.get(holder)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._client.close()


def run_stream(
    cp: ControlPlane,
    folder: Path,
    kind: str,
    mode: str,
    timing: Timing,
    count: int,
    out: Samples,
    stop: threading.Event,
) -> None:
    """`count` handovers on a Lease of its own, appended to `out` as they are measured."""
    namespace = cp.create_namespace("bench-handover")
    name = "lock"
    versions = _Versions(cp, namespace, name)
    peers: list[Peer] = []
    serial = itertools.count()
    patience = 2 * timing.lease + 4 * timing.retry + 10

    def spawn() -> Peer:
        identity = f"{kind}-{next(serial)}"
        user = cp.user(identity, namespace=namespace, verbs={"leases": VERBS})
        args = candidate_args(
            kind,
            kubeconfig=user.kubeconfig,
            namespace=namespace,
            name=name,
            identity=identity,
            timing=timing,
        )
        with quiet:
            peer = Peer(kind, identity, args, folder / f"{namespace}.{identity}.log")
            peer.wait_for("ready", within=60)
            time.sleep(0.2)
        return peer

    done = 0
    try:
        while done < count and not stop.is_set():
            done += 1
            peers = [p for p in peers if p.exited_at is None]
            while len(peers) < POOL:
                peers.append(spawn())
            deadline = time.monotonic() + patience
            leader: Peer | None = None
            while time.monotonic() < deadline and leader is None:
                leading = [p for p in peers if p.leading]
                leader = leading[0] if len(leading) == 1 else None
                if leader is None:
                    time.sleep(0.1)
            if leader is None:
                out.failures.append("no leader")
                continue
            # followers have seen the leader, and it has renewed a few times
            begun = leader.started_leading_at() or time.monotonic()
            time.sleep(max(0.0, begun + 3 * timing.retry + 0.5 - time.monotonic()))
            time.sleep(timing.retry * (next(serial) % 7) / 7)  # any phase of the renew cycle
            others = [p for p in peers if p is not leader]
            if mode == "graceful" and kind in OURS:
                with quiet:
                    sent = leader.send(signal.SIGTERM)
                    started = _successor(others, sent, patience)
            else:
                signum = signal.SIGTERM if mode == "graceful" else signal.SIGKILL
                sent = leader.send(signum)
                started = _successor(others, sent, patience)
            last = versions.last(leader.identity)
            if started is None:
                out.failures.append(f"no successor within {patience:g} s")
            else:
                out.after_signal.append(started - sent)
                if last is not None:
                    out.after_renew.append(started - last)
            leader.wait_for("process-exit", within=timing.renew + 5)
            leader.kill()
            peers.remove(leader)
    finally:
        for peer in peers:
            peer.kill()
        versions.close()


def _successor(others: list[Peer], sent: float, within: float) -> float | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        times = [
            e.time
            for p in others
            for e in list(p.events)
            if e.kind == "started-leading" and e.time >= sent
        ]
        if times:
            return min(times)
        time.sleep(0.002)
    return None


def run_startup(
    cp: ControlPlane, folder: Path, kind: str, repeats: int, timing: Timing
) -> list[float]:
    """Process start -> leading, on a free Lease, `repeats` times."""
    namespace = cp.create_namespace("bench-startup")
    user = cp.user("starter", namespace=namespace, verbs={"leases": VERBS})
    found: list[float] = []
    for i in range(repeats):
        args = candidate_args(
            kind,
            kubeconfig=user.kubeconfig,
            namespace=namespace,
            name=f"start-{i}",
            identity=f"starter-{i}",
            timing=timing,
        )
        peer = Peer(kind, f"starter-{i}", args, folder / f"startup-{kind}.log")
        try:
            event = peer.wait_for("started-leading", within=60)
            if event is not None:
                found.append(event.time - peer.started_at)
        finally:
            peer.kill()
    return found
