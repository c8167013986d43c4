"""Candidate processes that print event lines, and what /proc says about a process."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.event_lines import Event, EventProcess

from trio_election._controlplane._binaries import find_clientgo_candidate
from trio_election._controlplane._processes import Reaper

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "tests" / "peers"
HERE = Path(__file__).resolve().parent
OURS = ("trio", "asyncio", "uvloop")
"""This library's kinds: the same candidate under `trio.run`, `asyncio.run` and `uvloop.run`."""
KINDS = (*OURS, "clientgo", "kubepy")
LABELS = {
    "trio": "trio-election (trio)",
    "asyncio": "trio-election (asyncio)",
    "uvloop": "trio-election (uvloop)",
    "clientgo": "client-go",
    "kubepy": "kubernetes (Python)",
}
TICK = os.sysconf("SC_CLK_TCK")

_reaper: Reaper | None = None


def reaper() -> Reaper:
    """Kills every candidate process group should this process die without doing so."""
    global _reaper
    if _reaper is None:
        _reaper = Reaper()
    return _reaper


@dataclass(frozen=True, slots=True)
class Timing:
    lease: int = 15
    renew: int = 10
    retry: int = 2

    @property
    def label(self) -> str:
        return f"{self.lease}/{self.renew}/{self.retry} s"


def clientgo_binary() -> Path:
    found = find_clientgo_candidate(PEERS / "clientgo")
    if found is None:
        raise SystemExit(
            "the client-go candidate is missing or stale: "
            "run python3 scripts/build_control_plane.py"
        )
    return found


def child_env() -> dict[str, str]:
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
    return {k: v for k, v in os.environ.items() if k.lower() not in drop}


def candidate_args(
    kind: str, *, kubeconfig: Path, namespace: str, name: str, identity: str, timing: Timing
) -> list[str]:
    """The command line of one candidate of `kind` (the interop tests' peers)."""
    if kind in OURS:
        args = [
            sys.executable,
            str(PEERS / "trio_candidate.py"),
            f"--runtime={kind}",
            f"--lock=leases/{namespace}/{name}",
        ]
    elif kind == "kubepy":
        args = [
            sys.executable,
            str(PEERS / "kubepy_candidate.py"),
            f"--namespace={namespace}",
            f"--name={name}",
            "--lock=leases",
        ]
    else:
        args = [str(clientgo_binary()), f"--namespace={namespace}", f"--name={name}"]
    return [
        *args,
        f"--kubeconfig={kubeconfig}",
        f"--identity={identity}",
        f"--lease-duration={timing.lease}",
        f"--renew-deadline={timing.renew}",
        f"--retry-period={timing.retry}",
    ]


class Peer(EventProcess):
    """One candidate process of a benchmark, reaped should the harness die first."""

    def __init__(
        self,
        kind: str,
        identity: str,
        args: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        *,
        stdin: bool = False,
    ) -> None:
        """`env`: variables set for it, over `child_env()`; `stdin`: `tell()` writes to it."""
        self.kind = kind
        self.identity = identity
        super().__init__(
            args,
            log=log,
            env={**child_env(), **(env or {})},
            name=f"peer-{identity}",
            stdin=stdin,
        )
        reaper().watch_group(self.process.pid)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.identity} pid={self.process.pid}>"

    def wait_for(
        self, kind: str, *, since: float = 0.0, within: float, count: int = 1
    ) -> Event | None:
        """The `count`-th `kind` event at or after `since`, or None (timeout or exit)."""
        return self.find(kind, since=since, within=within, count=count)

    def started_leading_at(self) -> float | None:
        starts = [e.time for e in list(self.events) if e.kind == "started-leading"]
        return starts[-1] if starts else None

    def kill(self) -> None:
        super().kill()
        reaper().forget_group(self.process.pid)


@dataclass(frozen=True, slots=True)
class ProcStat:
    cpu: float
    """user + system CPU seconds so far."""
    rss: int
    """bytes now."""
    hwm: int
    """peak RSS, bytes."""
    threads: int


def proc_stat(pid: int) -> ProcStat:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return ProcStat(
        cpu=cpu,
        rss=int(status["VmRSS"].split()[0]) * 1024,
        hwm=int(status["VmHWM"].split()[0]) * 1024,
        threads=int(status["Threads"]),
    )
