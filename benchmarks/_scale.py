"""Many elections in one process: CPU, peak RSS, threads and TLS handshakes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from trio_election._controlplane._kubeconfig import write_kubeconfig

from ._load import lease_requests
from ._procs import HERE, Peer, Timing, clientgo_binary, proc_stat
from ._proxy import ProxyProcess

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane

VERBS = ("get", "create", "update", "patch", "watch", "list")


@dataclass
class ScaleResult:
    kind: str
    n: int
    cpu: list[float] = field(default_factory=list[float])
    """CPU seconds per second (1.0 = one core), one figure per window."""
    handshakes_per_min: list[float] = field(default_factory=list[float])
    hwm: int = 0
    rss: int = 0
    threads: int = 0
    connections: int = 0
    """TCP connections open to the apiserver at the end."""
    startup: float = 0.0
    """Process start to every election leading, seconds."""
    lost: int = 0
    """Terms that ended while measuring (none should)."""
    lost_starting: int = 0
    """Terms that ended before: while every election started at once, and settled."""
    server_cpu: float = 0.0
    """CPU of etcd and kube-apiserver meanwhile (1.0 = one core)."""
    requests_per_min: dict[str, float] = field(default_factory=dict[str, float])
    """Requests on Leases per minute over the whole measurement, by verb (apiserver)."""
    error: str = ""


def run_scale(
    cp: ControlPlane,
    folder: Path,
    kind: str,
    n: int,
    *,
    timing: Timing,
    windows: int,
    window: float,
    log: Path,
) -> ScaleResult:
    result = ScaleResult(kind, n)
    namespace = cp.create_namespace("bench-scale")
    user = cp.user("many", namespace=namespace, verbs={"leases": VERBS})
    url = httpx.URL(cp.server)
    proxy = ProxyProcess((url.host, url.port or 443))
    try:
        kubeconfig = write_kubeconfig(
            folder / f"scale-{kind}-{n}.kubeconfig",
            server=proxy.address,
            ca_pem=cp.ca_pem,
            user="many",
            token=user.token,
            namespace=namespace,
        )
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--namespace={namespace}",
            "--identity=many",
            f"--lease-duration={timing.lease}",
            f"--renew-deadline={timing.renew}",
            f"--retry-period={timing.retry}",
        ]
        if kind == "clientgo":
            args = [str(clientgo_binary()), *common, "--name=e", f"--elections={n}"]
        else:
            args = [sys.executable, str(HERE / "_many.py"), kind, *common, "--prefix=e", f"-n={n}"]
        peer = Peer(kind, "many", args, log)
        try:
            within = 60.0 + n * 0.12
            done = peer.wait_for("started-leading", within=within, count=n)
            if done is None:
                have = peer.count("started-leading")
                result.error = f"only {have} of {n} elections led within {within:g} s"
                return result
            result.startup = done.time - peer.started_at
            time.sleep(2 * timing.retry + 1.0)
            lost_before = peer.count("stopped-leading")
            before = proc_stat(peer.pid)
            accepted = proxy.accepted
            at = began = time.monotonic()
            requests = lease_requests(cp.metrics())
            server_before = sum(proc_stat(pid).cpu for pid in cp.pids)
            for _ in range(windows):
                time.sleep(window)
                now_stat, now = proc_stat(peer.pid), time.monotonic()
                result.cpu.append((now_stat.cpu - before.cpu) / (now - at))
                result.handshakes_per_min.append((proxy.accepted - accepted) * 60.0 / (now - at))
                before, accepted, at = now_stat, proxy.accepted, now
            after = lease_requests(cp.metrics())
            server_after = sum(proc_stat(pid).cpu for pid in cp.pids)
            minutes = (time.monotonic() - began) / 60
            result.server_cpu = (server_after - server_before) / (minutes * 60)
            result.requests_per_min = {v: (after[v] - requests[v]) / minutes for v in after}
            final = proc_stat(peer.pid)
            result.hwm, result.rss, result.threads = final.hwm, final.rss, final.threads
            result.connections = proxy.open
            result.lost_starting = lost_before
            result.lost = peer.count("stopped-leading") - lost_before
        finally:
            peer.kill()
    finally:
        proxy.close()
    return result
