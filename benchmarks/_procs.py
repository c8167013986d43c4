"""Candidate processes that print event lines, and what /proc says about a process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trio_election.testing._binaries import find_clientgo_candidate
from trio_election.testing._processes import Reaper

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "tests" / "peers"
HERE = Path(__file__).resolve().parent
KINDS = ("trio", "clientgo", "kubepy")
LABELS = {"trio": "trio-election", "clientgo": "client-go", "kubepy": "kubernetes (Python)"}
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


@dataclass(frozen=True, slots=True)
class Event:
    time: float
    """CLOCK_MONOTONIC seconds, as the process printed it."""
    kind: str
    arg: str


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
    if kind == "trio":
        args = [
            sys.executable,
            str(PEERS / "trio_candidate.py"),
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


class Peer:
    """One process; its stdout event lines arrive in `events` as it prints them."""

    def __init__(self, kind: str, identity: str, args: list[str], log: Path) -> None:
        self.kind = kind
        self.identity = identity
        self.events: list[Event] = []
        self.started_at = time.monotonic()
        self.exited_at: float | None = None
        self._changed = threading.Condition()
        self._log: IO[bytes] = log.open("ab")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            env=child_env(),
        )
        reaper().watch_group(self.process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.identity} pid={self.process.pid}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            when, _, rest = line.partition(" ")
            kind, _, arg = rest.partition(" ")
            try:
                event = Event(float(when), kind, json.loads(arg) if arg else "")
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        self.process.wait()
        with self._changed:
            self.exited_at = time.monotonic()
            self.events.append(Event(self.exited_at, "process-exit", str(self.process.returncode)))
            self._changed.notify_all()

    def wait_for(
        self, kind: str, *, since: float = 0.0, within: float, count: int = 1
    ) -> Event | None:
        """The `count`-th `kind` event at or after `since`, or None (timeout or exit)."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                found = [e for e in self.events if e.kind == kind and e.time >= since]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.exited_at is not None:
                    return None
                self._changed.wait(left)

    def count(self, kind: str) -> int:
        with self._changed:
            return sum(1 for e in self.events if e.kind == kind)

    @property
    def leading(self) -> bool:
        with self._changed:
            state = False
            for event in self.events:
                if event.kind == "started-leading":
                    state = True
                elif event.kind in ("stopped-leading", "process-exit"):
                    state = False
            return state

    def started_leading_at(self) -> float | None:
        with self._changed:
            starts = [e.time for e in self.events if e.kind == "started-leading"]
        return starts[-1] if starts else None

    def send(self, signum: signal.Signals) -> float:
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)
        return sent

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        reaper().forget_group(self.process.pid)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


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
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return ProcStat(
        cpu=cpu,
        rss=int(status["VmRSS"].split()[0]) * 1024,
        hwm=int(status["VmHWM"].split()[0]) * 1024,
        threads=int(status["Threads"]),
    )
