"""The README's asyncio example, as pods run it, on the real apiserver.

The example is read out of README.md (a change there changes what runs here), its lock
string replaced by this test's Lease, after a prelude that defines its `run_controller`:
an event line when the work starts and one when it unwinds, on the machine's monotonic
clock (``<CLOCK_MONOTONIC seconds> <event> <JSON string>``, as tests/peers/ print them),
and the library's log lines as events too. Each replica is a process of its own with its
kubeconfig in `$KUBECONFIG`, as the example finds it. Its timings are the defaults (lease
15 s, renew deadline 10 s, retry 2 s), except across the apiserver restart
(`RESTART_TIMINGS`).

- SIGTERM hands over at once and the process exits with status 143, under `asyncio.run()`
  and under `uvloop.run()`;
- an apiserver restart costs the leader nothing;
- a foreign write to the Lease (released, or another holder) ends the term at once;
- two asyncio replicas and a trio candidate (tests/peers/trio_candidate.py) on one Lease,
  stopped with SIGTERM and SIGKILL in turn: never two leaders, judged on one clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from harness.event_lines import Event, EventProcess
from interop._fleet import LockRecorder, _child_env

from trio_election._controlplane._processes import Reaper
from trio_election._kube_locks._records import record_from_lease_spec
from trio_election.testing import History, Interval

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from trio_election import LeaderRecord
    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TRIO_CANDIDATE = ROOT / "tests" / "peers" / "trio_candidate.py"
VERBS = ("get", "create", "update", "patch", "watch", "list")
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0
"""The library's defaults, which the README example runs with."""
STARTUP_WITHIN = 30.0
"""Imports and a first read of the Lease, on a busy two-core machine."""
CRASH_WITHIN = LEASE_DURATION + 2 * RETRY_PERIOD + 10.0
"""A takeover after a SIGKILL: the lease runs out, seen one poll late, plus a busy machine."""
_names = itertools.count()

Runner = Literal["asyncio.run", "uvloop.run"]

PRELUDE = """\
import json
import logging
import os
import time

REPLICA = os.environ["REPLICA"]


def emit(event, arg):
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


class Emit(logging.Handler):
    def emit(self, record):
        emit("log", record.getMessage())


logging.basicConfig(level=logging.INFO)  # on stderr, in the replica's log file
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("trio_election").addHandler(Emit())


async def run_controller(term):
    import asyncio

    loop = type(asyncio.get_running_loop())
    emit("started-leading", REPLICA)
    emit("term", str(term))
    emit("loop", loop.__module__.partition(".")[0])
    try:
        await asyncio.Event().wait()
    finally:
        emit("stopped-leading", REPLICA)

"""


def readme_asyncio_example() -> str:
    """The README's asyncio example, as written there."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    examples = [block for block in blocks if "te.elect(" in block and "asyncio.run(" in block]
    assert len(examples) == 1, "README.md has one asyncio example of te.elect"
    example = examples[0]
    assert '"leases/default/my-app"' in example
    assert "asyncio.run(main())" in example
    return example


def readme_program(lock: str, runner: Runner = "asyncio.run", timings: str = "") -> str:
    """The README's asyncio example with its lock string replaced (and `timings`, keyword
    arguments of `te.elect`, after it); with `runner` ``uvloop.run``, started as uvloop's
    documentation says instead of `asyncio.run()`."""
    lock_and_timings = repr(lock) + (f", {timings}" if timings else "")
    example = readme_asyncio_example().replace('"leases/default/my-app"', lock_and_timings)
    if runner == "uvloop.run":
        example = "import uvloop\n" + example.replace("asyncio.run(main())", "uvloop.run(main())")
    return PRELUDE + example


class Replica(EventProcess):
    """One candidate process: the README example, or the trio candidate of tests/peers."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        super().__init__(args, log=log, env=env, name=name)

    def __repr__(self) -> str:
        return f"<Replica {self.name} pid={self.pid}>"

    def wait_for(self, kind: str, *, since: float = 0.0, within: float) -> Event:
        """The first `kind` event at or after `since`; fails the test after `within`
        seconds or when the process exits without it."""
        found = self.find(kind, since=since, within=within)
        if found is None:
            reason = "it exited" if self.exited_at is not None else f"not within {within:g} s"
            pytest.fail(f"{self}: no {kind!r} event ({reason})\n{self.describe()}", pytrace=False)
        return found

    def wait_log(self, text: str, *, since: float = 0.0, within: float) -> Event:
        """The first line of the library's log containing `text`, at or after `since`."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for event in self.events:
                    if event.kind == "log" and text in event.arg and event.time >= since:
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.exited_at is not None:
                    break
                self._changed.wait(left)
        pytest.fail(f"{self}: never logged {text!r}\n{self.describe()}", pytrace=False)

    def wait_exit(self, within: float = 20.0) -> int:
        """Its exit status (negative: the signal that killed it)."""
        return self.process.wait(within)

    def logs(self, text: str) -> list[str]:
        with self._changed:
            return [e.arg for e in self.events if e.kind == "log" and text in e.arg]

    def describe(self) -> str:
        with self._changed:
            lines = [f"  {e.time:.3f} {e.kind} {e.arg}" for e in self.events[-30:]]
        log = self.log_path.read_text(errors="replace").splitlines()[-30:]
        return "events:\n" + "\n".join(lines) + f"\nend of {self.log_path}:\n" + "\n".join(log)

    def intervals(self, now: float) -> list[Interval]:
        """Its terms: from `started-leading` to `stopped-leading` or its death, those still
        open ending at `now`."""
        terms: list[Interval] = []
        start: float | None = None
        with self._changed:
            for event in self.events:
                if event.kind == "started-leading" and start is None:
                    start = event.time
                elif event.kind in ("stopped-leading", "process-exit") and start is not None:
                    terms.append(Interval(self.name, start, event.time))
                    start = None
        if start is not None:
            terms.append(Interval(self.name, start, now))
        return terms


class Replicas:
    """The candidates of one Lease; every process is killed at the end, whatever happened."""

    def __init__(self, control_plane: ControlPlane, user: TestUser, folder: Path) -> None:
        self.control_plane = control_plane
        self.user = user
        self.folder = folder
        self.name = f"asyncio-{next(_names)}"
        self.lock = f"leases/{user.namespace}/{self.name}"
        self.all: list[Replica] = []
        self.reaper = Reaper()
        self.recorder: LockRecorder | None = None

    def record(self) -> LockRecorder:
        """Record every version of the Lease from now on (an admin watch, which missed the
        renews after an apiserver restart here: the restart test reads the Lease instead)."""
        if self.recorder is None:
            self.recorder = LockRecorder(
                self.control_plane, self.user.namespace, "leases", self.name
            )
        return self.recorder

    def _start(self, name: str, args: list[str]) -> Replica:
        env = {**_child_env(), "KUBECONFIG": str(self.user.kubeconfig), "REPLICA": name}
        replica = Replica(name, args, env, self.folder / f"{name}.log")
        self.reaper.watch_group(replica.pid)
        self.all.append(replica)
        return replica

    def readme(self, name: str, runner: Runner = "asyncio.run", timings: str = "") -> Replica:
        """Start a replica of the README's asyncio example (it returns at once)."""
        program = self.folder / f"readme_{runner.partition('.')[0]}.py"
        if not program.exists():
            program.write_text(readme_program(self.lock, runner, timings))
        return self._start(name, [sys.executable, str(program)])

    def trio(self, name: str) -> Replica:
        """Start the trio candidate with the README's timings; returns once it has read
        the Lease."""
        args = [
            sys.executable,
            str(TRIO_CANDIDATE),
            f"--kubeconfig={self.user.kubeconfig}",
            f"--lock={self.lock}",
            f"--identity={name}",
            f"--lease-duration={LEASE_DURATION:g}",
            "--renew-deadline=10",
            f"--retry-period={RETRY_PERIOD:g}",
        ]
        replica = self._start(name, args)
        replica.wait_for("ready", within=STARTUP_WITHIN)
        return replica

    def history(self) -> History:
        now = time.monotonic()
        return History(intervals=[iv for r in self.all for iv in r.intervals(now)])

    @contextlib.contextmanager
    def frozen(self, *replicas: Replica) -> Generator[None]:
        """SIGSTOP `replicas` (followers) for the block, so that another one succeeds."""
        for replica in replicas:
            replica.send(signal.SIGSTOP)
        try:
            yield
        finally:
            for replica in replicas:
                replica.send(signal.SIGCONT)

    def close(self) -> None:
        for replica in self.all:
            replica.kill()
        self.reaper.release()
        if self.recorder is not None:
            self.recorder.close()


@pytest.fixture(scope="module")
def user(control_plane: ControlPlane) -> TestUser:
    namespace = control_plane.create_namespace("asyncio-processes")
    return control_plane.user("replica", namespace=namespace, verbs={"leases": VERBS})


@pytest.fixture
def replicas(control_plane: ControlPlane, user: TestUser, tmp_path: Path) -> Iterator[Replicas]:
    fleet = Replicas(control_plane, user, tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


def follows(replica: Replica) -> str:
    """Wait until a README replica has read the Lease that another one holds (its watch
    resumes from what it read, so a release is not missed however soon it comes); the
    holder it sees."""
    return replica.wait_log(" sees leader ", within=STARTUP_WITHIN).arg.split()[-1]


def assert_clean_exit(replica: Replica, status: int) -> None:
    assert replica.wait_exit() == status, replica.describe()
    log = replica.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log


# -- SIGTERM --------------------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["asyncio.run", "uvloop.run"])
def test_the_asyncio_readme_example_hands_over_at_once_on_sigterm(
    replicas: Replicas, runner: Runner
) -> None:
    loop = runner.partition(".")[0]
    leader = replicas.readme("r0", runner)
    leader.wait_for("started-leading", within=STARTUP_WITHIN)
    assert leader.wait_for("loop", within=1).arg == loop
    handovers: list[float] = []
    for i in range(1, 4):
        stand_by = replicas.readme(f"r{i}", runner)
        follows(stand_by)
        sent = leader.send(signal.SIGTERM)
        started = stand_by.wait_for("started-leading", since=sent, within=20)
        handovers.append(started.time - sent)
        assert stand_by.wait_for("loop", within=1).arg == loop
        assert_clean_exit(leader, 143)  # the status of a process stopped by SIGTERM
        assert leader.logs("SIGTERM: stopping 1 election(s)"), leader.describe()
        leader = stand_by
    replicas.history().assert_one_leader()
    median = statistics.median(handovers)
    print(f"SIGTERM handover of the README's asyncio example under {runner}(): median "
          f"{median * 1000:.0f} ms, all {[round(h * 1000) for h in handovers]} ms")  # fmt: skip
    # a loose bound (a shared machine): a handover that waited for the lease would take 15 s
    assert median < 1.0, handovers


# -- an apiserver restart --------------------------------------------------------------------


def read_lease(control_plane: ControlPlane, replicas: Replicas) -> LeaderRecord:
    """The record of the Lease of `replicas`, as the admin reads it."""
    namespace, name = replicas.user.namespace, replicas.name
    with control_plane.http_client() as admin:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        record = record_from_lease_spec(admin.get(path).raise_for_status().json().get("spec"))
    assert record is not None
    return record


RESTART_TIMINGS = "lease_duration=40, renew_deadline=30"
"""A restart here is an outage of 5 s (the old apiserver's SIGTERM grace) plus the new
one's start, 5 s more at a load of 10 on two cores: beyond the default renew deadline (10 s)
on a busy machine. The example runs with a longer one, its retry period the default 2 s."""


def test_an_apiserver_restart_costs_the_asyncio_leader_nothing(
    control_plane: ControlPlane, replicas: Replicas
) -> None:
    leader = replicas.readme("leader", timings=RESTART_TIMINGS)
    leader.wait_for("started-leading", within=STARTUP_WITHIN)
    follower = replicas.readme("follower", timings=RESTART_TIMINGS)
    holder = follows(follower)
    held = read_lease(control_plane, replicas)
    assert held.holder_identity == holder
    began = time.monotonic()
    control_plane.stop_apiserver()
    stopped = time.monotonic()
    control_plane.start_apiserver()
    back, back_utc = time.monotonic(), dt.datetime.now(dt.UTC)
    print(f"the apiserver was down {back - began:.1f} s (stopping it {stopped - began:.1f} s)")
    # the leader renews through the new apiserver: a renew sent after it was back
    deadline = back + 4 * RETRY_PERIOD
    renewed = read_lease(control_plane, replicas)
    while renewed.renew_time is None or renewed.renew_time <= back_utc:
        assert time.monotonic() < deadline, f"no renew after the restart\n{leader.describe()}"
        time.sleep(0.1)  # the apiserver's state, polled: it has no event for us to wait on
        renewed = read_lease(control_plane, replicas)
    # same term: nobody else took the Lease in between, nor did the leader take it anew
    assert renewed.holder_identity == holder
    assert renewed.leader_transitions == held.leader_transitions
    assert renewed.acquire_time == held.acquire_time
    assert leader.count("stopped-leading") == 0, leader.describe()
    assert leader.logs(" lost ") == [], leader.describe()
    assert follower.count("started-leading") == 0, follower.describe()
    # and the follower still follows: a SIGTERM hands over within a polling follower's
    # bound (2.2 retry periods; at once when its watch is back, which it tells nobody)
    sent = leader.send(signal.SIGTERM)
    started = follower.wait_for("started-leading", since=sent, within=20)
    print(f"SIGTERM handover after the restart: {1000 * (started.time - sent):.0f} ms")
    assert started.time - sent < 2.2 * RETRY_PERIOD + 1.0  # + a busy machine
    assert_clean_exit(leader, 143)
    replicas.history().assert_one_leader()


# -- a foreign write -------------------------------------------------------------------------


def write_lease(control_plane: ControlPlane, namespace: str, name: str, holder: str) -> float:
    """Write the Lease as another process would: `holder` ("" is client-go's release: a
    1 s lease; another holder takes 15 s), times now, transitions kept, on its current
    version. Returns when the write was sent (time.monotonic())."""
    with control_plane.http_client() as admin:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        lease = admin.get(path).raise_for_status().json()
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(
            holderIdentity=holder,
            leaseDurationSeconds=1 if holder == "" else 15,
            acquireTime=now,
            renewTime=now,
        )
        sent = time.monotonic()
        admin.put(path, json=lease).raise_for_status()
    return sent


@pytest.mark.parametrize(
    ("holder", "reason"), [("", "released the lock"), ("intruder", "intruder holds the lock now")]
)
def test_a_foreign_write_ends_the_asyncio_leaders_term_at_once(
    control_plane: ControlPlane, replicas: Replicas, holder: str, reason: str
) -> None:
    leader = replicas.readme("leader")
    leader.wait_for("started-leading", within=STARTUP_WITHIN)
    follower = replicas.readme("follower")
    follows(follower)
    written = write_lease(control_plane, replicas.user.namespace, replicas.name, holder)
    stopped = leader.wait_for("stopped-leading", since=written, within=10)
    print(f"the term ended {1000 * (stopped.time - written):.0f} ms after the foreign write")
    # at once: the leader watches its Lease; at its next renew would be up to 2 s later
    assert stopped.time - written < 1.0
    lost = leader.wait_log(" lost ", within=5)
    assert reason in lost.arg, lost.arg
    # the README example lets te.LeadershipLost end the program: a pod restarts it
    assert leader.wait_exit() == 1
    assert "LeadershipLost" in leader.log_path.read_text(errors="replace")
    if holder == "":
        # the released Lease is taken by the follower, after the leader's work stopped
        follower.wait_for("started-leading", since=written, within=20)
    else:
        assert follower.count("started-leading") == 0
    replicas.history().assert_one_leader()


# -- asyncio and trio on one Lease ----------------------------------------------------------


@pytest.mark.chaos  # long: `nox -s chaos`
def test_asyncio_and_trio_candidates_never_lead_together(replicas: Replicas) -> None:
    """Two README replicas (asyncio) and the trio candidate; the leader is stopped with
    SIGTERM or SIGKILL in turn, the successor chosen by freezing the other follower, and
    each stopped replica replaced, as a Deployment would."""
    recorder = replicas.record()
    a1 = replicas.readme("a1")
    a1.wait_for("started-leading", within=STARTUP_WITHIN)
    a2 = replicas.readme("a2")
    t1 = replicas.trio("t1")
    follows(a2)

    def handover(leader: Replica, signum: signal.Signals, successor: Replica, other: Replica,
                 within: float) -> None:  # fmt: skip
        with replicas.frozen(other):
            sent = leader.send(signum)
            started = successor.wait_for("started-leading", since=sent, within=within)
        took = started.time - sent
        print(f"{leader.name} -> {successor.name} on {signum.name}: {took:.2f} s")
        if signum == signal.SIGTERM:
            assert_clean_exit(leader, 143)
            assert took < 1.0  # released: taken at once
        else:
            assert leader.wait_exit() == -signal.SIGKILL
            assert took > LEASE_DURATION - RETRY_PERIOD  # not before the lease ran out

    handover(a1, signal.SIGTERM, t1, a2, within=20)  # asyncio to trio, released
    a3 = replicas.readme("a3")
    follows(a3)
    handover(t1, signal.SIGKILL, a2, a3, within=CRASH_WITHIN)  # trio to asyncio, crashed
    t2 = replicas.trio("t2")
    handover(a2, signal.SIGKILL, t2, a3, within=CRASH_WITHIN)  # asyncio to trio, crashed
    a4 = replicas.readme("a4")
    follows(a4)
    handover(t2, signal.SIGTERM, a3, a4, within=20)  # trio to asyncio, released

    history = replicas.history()
    history.assert_one_leader()
    led = [iv.identity for iv in history.closed()]
    assert led == ["a1", "t1", "a2", "t2", "a3"], led
    # and the Lease named them in that order (between them, released: no holder)
    named = [v.holder for v in recorder.holders() if v.holder]
    assert len(named) == 5, named
    assert (named[1], named[3]) == ("t1", "t2"), named
    assert len(set(named)) == 5, named  # each README replica has an identity of its own
