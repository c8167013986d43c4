"""API requests per minute on one Lease, by verb, from the apiserver's own /metrics."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._handover import VERBS
from ._procs import Peer, Timing, candidate_args

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane

_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def lease_requests(metrics: str) -> Counter[str]:
    """Requests on Leases so far, by verb (LIST, GET, WATCH, PATCH, PUT, POST, ...)."""
    counts: Counter[str] = Counter()
    for match in _SAMPLE.finditer(metrics):
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("resource") == "leases" and labels.get("group") == "coordination.k8s.io":
            counts[labels.get("verb", "?")] += int(float(match.group(2)))
    return counts


def baseline(cp: ControlPlane, *, windows: int, window: float) -> list[dict[str, float]]:
    """Requests on Leases per minute with no candidate at all: the apiserver's own (it
    renews an identity Lease of its own in kube-system every 10 s)."""
    found: list[dict[str, float]] = []
    before, at = lease_requests(cp.metrics()), time.monotonic()
    for _ in range(windows):
        time.sleep(window)
        now_counts, now = lease_requests(cp.metrics()), time.monotonic()
        minutes = (now - at) / 60
        found.append({verb: (now_counts[verb] - before[verb]) / minutes for verb in now_counts})
        before, at = now_counts, now
    return found


@dataclass
class LoadResult:
    kind: str
    candidates: int
    per_min: list[dict[str, float]] = field(default_factory=list[dict[str, float]])
    """Requests per minute by verb, one mapping per window."""

    def totals(self) -> list[float]:
        return [sum(window.values()) for window in self.per_min]


def run_load(
    cp: ControlPlane,
    folder: Path,
    kind: str,
    candidates: int,
    *,
    timing: Timing,
    windows: int,
    window: float,
) -> LoadResult:
    """`candidates` processes of `kind` on one Lease; nothing else may talk to Leases."""
    result = LoadResult(kind, candidates)
    namespace = cp.create_namespace("bench-load")
    peers: list[Peer] = []
    try:
        for i in range(candidates):
            identity = f"{kind}-{i}"
            user = cp.user(identity, namespace=namespace, verbs={"leases": VERBS})
            args = candidate_args(
                kind,
                kubeconfig=user.kubeconfig,
                namespace=namespace,
                name="lock",
                identity=identity,
                timing=timing,
            )
            peer = Peer(kind, identity, args, folder / f"load-{namespace}.{identity}.log")
            peers.append(peer)
            peer.wait_for("ready", within=60)
        deadline = time.monotonic() + 2 * timing.lease + 10
        while not any(p.leading for p in peers) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2 * timing.retry + 2.0)  # past the start-up reads and writes
        before, at = lease_requests(cp.metrics()), time.monotonic()
        for _ in range(windows):
            time.sleep(window)
            now_counts, now = lease_requests(cp.metrics()), time.monotonic()
            minutes = (now - at) / 60
            result.per_min.append(
                {verb: (now_counts[verb] - before[verb]) / minutes for verb in now_counts}
            )
            before, at = now_counts, now
    finally:
        for peer in peers:
            peer.kill()
    return result
