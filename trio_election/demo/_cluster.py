"""The demo on a real control plane: candidates as processes sharing one Lease.

The leader is killed with SIGKILL (no release: the lease has to run out), then the next
leader is stopped with SIGTERM (it releases: the handover is immediate).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from trio_election._history import History, Interval

from ._timeline import Show

if TYPE_CHECKING:
    from trio_election._controlplane._control_plane import ControlPlane

__all__ = ["run_cluster_demo"]


def _now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass
class _Process:
    identity: str
    process: trio.Process
    leading_since: float | None = None
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class _State:
    show: Show
    history: History = field(default_factory=History)
    processes: dict[str, _Process] = field(default_factory=dict[str, _Process])
    changed: trio.Event = field(default_factory=trio.Event)

    def leader(self) -> _Process | None:
        for proc in self.processes.values():
            if proc.leading_since is not None:
                return proc
        return None

    def end(self, proc: _Process, at: float) -> None:
        if proc.leading_since is not None:
            self.history.intervals.append(Interval(proc.identity, proc.leading_since, at))
            proc.leading_since = None

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def _read_reports(state: _State, proc: _Process) -> None:
    stream = proc.process.stdout
    assert stream is not None
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            report = json.loads(line)
            event = report["event"]
            if event == "leading":
                proc.leading_since = report["t"]
                state.show(f"{proc.identity} is LEADER (term {report['term']})")
            elif event == "stopped":
                state.end(proc, report["t"])
                state.show(f"{proc.identity} stopped leading and releases the lock")
            elif event == "ready":
                state.show(f"{proc.identity} is campaigning")
            state.wake()
    proc.done.set()
    state.wake()


async def _wait_for_leader(state: _State, other_than: _Process | None = None) -> _Process:
    while True:
        leader = state.leader()
        if leader is not None and leader is not other_than:
            return leader
        await state.changed.wait()


async def run_cluster_demo(
    plane: ControlPlane, candidates: int, timing: dict[str, float]
) -> tuple[History, float, float]:
    """Run the scenario; return the history and its start and end (monotonic seconds)."""
    show = Show()
    state = _State(show)
    namespace = await trio.to_thread.run_sync(plane.create_namespace, "demo")
    lock = f"leases/{namespace}/demo"
    show(
        f"{candidates} candidate processes on {lock} at {plane.server}; lease "
        f"{timing['lease_duration']:g} s, renew deadline {timing['renew_deadline']:g} s, "
        f"retry {timing['retry_period']:g} s"
    )
    started = _now()
    async with trio.open_nursery() as nursery:
        for i in range(candidates):
            identity = f"candidate-{i}"
            command = [
                sys.executable,
                "-m",
                "trio_election.demo",
                "candidate",
                "--lock",
                lock,
                "--identity",
                identity,
                "--kubeconfig",
                str(plane.admin_kubeconfig),
                *[f"--{k.replace('_', '-')}={v}" for k, v in timing.items()],
            ]
            process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
            proc = _Process(identity, process)
            state.processes[identity] = proc
            nursery.start_soon(_read_reports, state, proc)

        first = await _wait_for_leader(state)
        await trio.sleep(3)
        show(f"KILL -9 {first.identity}: no release; the others must wait out its lease")
        killed_at = _now()
        first.process.send_signal(signal.SIGKILL)
        state.end(first, killed_at)
        second = await _wait_for_leader(state, other_than=first)
        show(f"failover: {second.identity} leads {_now() - killed_at:.2f} s after the kill")
        await trio.sleep(3)
        show(f"SIGTERM {second.identity}: it stops its work and releases the lock")
        stopped_at = _now()
        second.process.send_signal(signal.SIGTERM)
        third = await _wait_for_leader(state, other_than=second)
        show(f"handover: {third.identity} leads {_now() - stopped_at:.2f} s after the SIGTERM")
        await trio.sleep(2)
        for proc in state.processes.values():
            if proc.process.returncode is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in state.processes.values():
            await proc.done.wait()
            await proc.process.wait()
    ended = _now()
    for proc in state.processes.values():
        state.end(proc, ended)
    out = await trio.to_thread.run_sync(
        plane.kubectl, "get", "lease", "demo", "-n", namespace, "-o", "yaml"
    )
    show(f"the Lease as kubectl shows it:\n{out.stdout}")
    return state.history, started, ended
