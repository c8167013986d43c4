"""Run one `Schedule` in virtual time and collect what happened.

Each candidate slot runs a process: `open_election()` on its own lock handle (a
`MemoryLock` handle, or a `LeaseLock`/`ConfigMapLock` over its own `KubeClient` to one
`FakeKubeApi`), with its own `ScaledClock`, leading again and again; every term works a
random while, then steps down. The faults of the schedule hit one process's connection (its
requests and watch streams), the whole API, or the lock object (foreign writes). A crash
cuts the process off and cancels it without a release; a stop cancels it (it releases).
Crashed and stopped slots restart later, with a new identity or the same one.

After the last fault has healed, a quiet tail lets the election settle. `Outcome` holds
every leadership interval (`History`, from the start of the leader's work to the end of its
unwinding), every term, and the times that matter for the checks.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import random
import statistics
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from unittest import mock

import httpx
import trio
import trio.testing
from trio._core import _run as trio_run

import trio_election as te
from trio_election._core import _pacing
from trio_election.kube import LEADER_ANNOTATION
from trio_election.testing import FakeKubeApi, History, MemoryLockHandle

from ._clocks import RoundTripClock, SpinDetector
from ._schedule import LEADER, Event, Schedule

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator

    from trio_election.testing import Interval

__all__ = ["Outcome", "Term", "run_schedule", "seed_trio_scheduler", "seeded_engines"]

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NAMESPACE, NAME = "default", "lock"
NO_WATCH = frozenset({"get", "list", "create", "update", "patch"})
"""The RBAC of a Kubernetes candidate that may not watch (so it polls)."""


@dataclass(slots=True)
class Term:
    """One term of one process."""

    process: str
    slot: int
    rate: float
    leadership: te.Leadership
    start: float
    reason: str = ""
    """Why it ended, if it was lost."""


@dataclass(slots=True)
class Outcome:
    """What one run of a schedule came to (times are trio seconds from the start)."""

    schedule: Schedule
    history: History
    terms: list[Term] = field(default_factory=list[Term])
    applied: list[tuple[float, Event, int]] = field(default_factory=list[tuple[float, Event, int]])
    """Each event as applied: time, event, the slot it hit (-1: none)."""
    leader_crashes: list[float] = field(default_factory=list[float])
    """When a leader crashed."""
    quiet_start: float = 0.0
    """When the last fault had healed (a fault of the next N requests: once they were
    made) and the last restart was done."""
    end: float = 0.0

    def __repr__(self) -> str:
        return f"<Outcome of {len(self.terms)} terms, {len(self.overlaps())} overlaps>"

    def overlaps(self) -> list[tuple[Interval, Interval]]:
        return self.history.overlaps()

    def overlap_seconds(self) -> list[float]:
        """How long each pair of overlapping terms led together."""
        return [min(a.end, b.end) - b.start for a, b in self.overlaps()]

    def recoveries(self) -> list[float]:
        """From each leader crash to the start of the next term."""
        found: list[float] = []
        for crashed in self.leader_crashes:
            nxt = self.history.next_start_after(crashed)
            if nxt is not None:
                found.append(nxt - crashed)
        return found

    def quiet_recovery(self) -> float | None:
        """From the start of the quiet tail until someone leads (0 if someone does)."""
        t = self.quiet_start
        for iv in self.history.closed(self.end):
            if iv.start <= t < iv.end:
                return 0.0
        nxt = self.history.next_start_after(t)
        return None if nxt is None else nxt - t

    def term_of(self, interval: Interval) -> Term:
        for term in self.terms:
            if term.process == interval.identity and term.start == interval.start:
                return term
        raise LookupError(interval)

    def report(self) -> str:
        """A readable timeline: the schedule, every event as applied, every term."""
        lines = [repr(self.schedule), "", "events applied:"]
        for at, event, slot in self.applied:
            hit = f" -> slot {slot}" if slot >= 0 else ""
            lines.append(f"  {at:9.3f}  {event.describe()}{hit}")
        lines.append("terms:")
        for iv in self.history.closed(self.end):
            term = self.term_of(iv)
            lines.append(
                f"  {iv.start:9.3f} .. {iv.end:9.3f}  {iv.identity}  term {term.leadership.term}"
                f"  {term.reason}"
            )
        pairs = self.overlaps()
        lines.append(f"overlaps: {len(pairs)}")
        lines.extend(f"  {a} with {b}" for a, b in pairs)
        return "\n".join(lines)


def run_schedule(schedule: Schedule) -> Outcome:
    """Run `schedule` in virtual time (its own `trio.run`) and return what happened.

    The same schedule runs the same way every time, in hypothesis or out of it: the
    engines' random choices and trio's order of tasks that wake at one instant are seeded
    from `schedule.seed`."""
    detector = SpinDetector()
    seed_trio_scheduler(schedule.seed)
    with seeded_engines(schedule.seed), _quiet_logs():
        outcome = trio.run(
            _guarded,
            schedule,
            detector,
            clock=trio.testing.MockClock(autojump_threshold=0),
            instruments=[detector],
        )
    detector.verdict()
    assert outcome is not None
    return outcome


async def _guarded(schedule: Schedule, detector: SpinDetector) -> Outcome | None:
    with detector.scope:
        return await _run(schedule)
    return None


def seed_trio_scheduler(seed: int) -> None:
    """trio shuffles the tasks that wake at one instant with its own generator, in a
    repeatable way once hypothesis is imported (trio's hypothesis plugin); seed it."""
    importlib.import_module("hypothesis")  # loads trio's plugin: repeatable scheduling
    trio_run._r.seed(seed)


@contextmanager
def seeded_engines(seed: int) -> Generator[None]:
    """Give every engine of the run its own seeded random generator (jitter, expiry delays),
    so that a schedule replays exactly."""
    seeds = random.Random(seed)

    class _Seeded:
        @staticmethod
        def Random() -> random.Random:
            return random.Random(seeds.getrandbits(64))

    with mock.patch.object(_pacing, "random", _Seeded):
        yield


@contextmanager
def _quiet_logs() -> Generator[None]:
    """Losses and failed renewals are expected here: keep their warnings out of the log
    capture (errors still show)."""
    logger = logging.getLogger("trio_election")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


@dataclass(slots=True)
class _Process:
    slot: int
    incarnation: int
    identity: str
    rate: float
    watch: bool
    offset: float
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    election: te.Election | None = None
    handle: MemoryLockHandle | None = None
    crashed: bool = False

    @property
    def name(self) -> str:
        return f"c{self.slot}.{self.incarnation}"

    @property
    def is_leader(self) -> bool:
        return self.election is not None and self.election.is_leader


class _Backend:
    """Where the lock lives, and how faults reach it."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def connect(self, proc: _Process) -> Any:
        raise NotImplementedError

    def prepare(self, proc: _Process) -> None:
        """Set up `proc`'s connection before it starts (faults may hit it at once)."""

    def cut_off(self, proc: _Process) -> None:
        raise NotImplementedError

    def fault(self, proc: _Process, event: Event) -> bool:
        """Apply a fault to `proc`; True if it must be healed after `event.span`."""
        raise NotImplementedError

    def heal(self, proc: _Process) -> None:
        raise NotImplementedError

    def faults_pending(self, proc: _Process) -> bool:
        """Whether a fault of `proc`'s next requests (calls) has requests still to hit."""
        raise NotImplementedError

    def expire(self) -> None:
        """Compact the history: every watch gets 410 Gone."""

    def foreign(self, code: int, size: float, identity: str) -> None:
        raise NotImplementedError


class _MemoryBackend(_Backend):
    def __init__(self, schedule: Schedule) -> None:
        super().__init__(schedule)
        self.lock = te.MemoryLock(NAME)

    @asynccontextmanager
    async def connect(self, proc: _Process) -> AsyncGenerator[MemoryLockHandle]:
        assert proc.handle is not None
        yield proc.handle

    def prepare(self, proc: _Process) -> None:
        proc.handle = self.lock.handle(watch=proc.watch)

    def cut_off(self, proc: _Process) -> None:
        assert proc.handle is not None
        proc.handle.hang()

    def fault(self, proc: _Process, event: Event) -> bool:
        handle = proc.handle
        assert handle is not None
        if event.kind in ("fail", "5xx", "429"):
            handle.fail(int(event.size))
        elif event.kind == "conflict":
            handle.conflict(int(event.size))
        elif event.kind == "hang":
            handle.hang()
            return True
        elif event.kind == "slow":
            handle.delay = event.size
            return True
        return False

    def heal(self, proc: _Process) -> None:
        assert proc.handle is not None
        proc.handle.heal()

    def faults_pending(self, proc: _Process) -> bool:
        assert proc.handle is not None
        return proc.handle.faults_pending > 0

    def foreign(self, code: int, size: float, identity: str) -> None:
        transitions = _transitions(self.lock.observe().record)
        lease = int(self.schedule.lease) if self.schedule.lease.is_integer() else 0
        if code == 0:
            self.lock.put_record(te.LeaderRecord("intruder", int(size), EPOCH, EPOCH, transitions))
        elif code == 1:
            self.lock.put_raw('{"holderIdentity": ')
        elif code == 2:
            self.lock.put_record(te.LeaderRecord(identity, lease, EPOCH, EPOCH, transitions))
        elif code == 3:
            self.lock.put_record(te.LeaderRecord("", 1, EPOCH, EPOCH, transitions - 1))
        elif code == 4:
            self.lock.delete()


def _transitions(record: te.LeaderRecord | None) -> int:
    return 1 if record is None else record.leader_transitions + 1


class _KubeBackend(_Backend):
    def __init__(self, schedule: Schedule) -> None:
        super().__init__(schedule)
        self.api = FakeKubeApi(wall=lambda: EPOCH)
        self.lock_type = {"leases": te.LeaseLock, "configmaps": te.ConfigMapLock}[schedule.backend]

    @asynccontextmanager
    async def connect(self, proc: _Process) -> AsyncGenerator[te.LockHandle]:
        verbs = None if proc.watch else {self.schedule.backend: NO_WATCH}
        async with self.api.client(user=proc.name, verbs=verbs) as client:
            yield self.lock_type(NAMESPACE, NAME, client)

    def cut_off(self, proc: _Process) -> None:
        self.api.partition(proc.name)

    def fault(self, proc: _Process, event: Event) -> bool:
        api, user, n = self.api, proc.name, int(event.size)
        if event.kind == "fail":
            api.fail_next(n, user=user, error=httpx.ConnectError)
        elif event.kind == "5xx":
            api.fail_next(n, user=user, status=event.code or 500)
        elif event.kind == "429":
            api.fail_next(n, user=user, status=429, retry_after=event.code)
        elif event.kind == "conflict":
            api.fail_next(n, user=user, verb="patch", status=409)
        elif event.kind == "hang":
            api.partition(user)
            return True
        elif event.kind == "slow":
            api.slow_down(user, event.size)
            return True
        elif event.kind == "lag":
            api.lag_watches(user, event.size)
            return True
        elif event.kind == "drop":
            api.break_watches(user)
        elif event.kind == "stall":
            api.stall_next(apply_after=event.size, user=user, verb="patch")
            api.stall_next(apply_after=event.size, user=user, verb="create")
        return False

    def heal(self, proc: _Process) -> None:
        self.api.heal(proc.name)

    def faults_pending(self, proc: _Process) -> bool:
        return self.api.faults_pending(proc.name) > 0

    def expire(self) -> None:
        self.api.compact()
        self.api.expire_watches()

    def foreign(self, code: int, size: float, identity: str) -> None:
        resource = self.schedule.backend
        current = self.api.get_object(resource, NAME, NAMESPACE)
        if code == 4:
            self.api.delete_object(resource, NAME, NAMESPACE)
            return
        transitions = self._transitions(current)
        lease = int(self.schedule.lease) if self.schedule.lease.is_integer() else 1
        holder, duration = {
            0: ("intruder", int(size)),
            2: (identity, lease),
            3: ("", 1),
        }.get(code, ("", 1))
        if code == 3:
            transitions -= 1
        stamp = "2026-01-01T00:00:00.000000Z"
        record: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": stamp,
            "renewTime": stamp,
        }
        obj: dict[str, Any] = {"metadata": {"name": NAME, "namespace": NAMESPACE}}
        if resource == "leases":
            record["leaseTransitions"] = transitions
            obj["spec"] = {"holderIdentity": 12345} if code == 1 else record
        else:
            record["leaderTransitions"] = transitions
            value = '{"holderIdentity": ' if code == 1 else json.dumps(record)
            obj["metadata"]["annotations"] = {LEADER_ANNOTATION: value}
        self.api.put_object(resource, obj)

    def _transitions(self, current: dict[str, Any] | None) -> int:
        if current is None:
            return 1
        value: object = 0
        if self.schedule.backend == "leases":
            spec: object = current.get("spec")
            if isinstance(spec, dict):
                value = cast("dict[str, object]", spec).get("leaseTransitions", 0)
        else:
            text = current.get("metadata", {}).get("annotations", {}).get(LEADER_ANNOTATION)
            try:
                value = json.loads(text).get("leaderTransitions", 0)
            except (TypeError, ValueError, AttributeError):
                value = 0
        return (value if isinstance(value, int) else 0) + 1


async def _run(schedule: Schedule) -> Outcome:
    lease, renew, retry = schedule.timing
    history = History()
    outcome = Outcome(schedule, history)
    backend: _Backend = (
        _MemoryBackend(schedule) if schedule.backend == "memory" else _KubeBackend(schedule)
    )
    rng = random.Random(schedule.seed)
    slots: list[_Process | None] = [None] * len(schedule.candidates)
    incarnations = [0] * len(schedule.candidates)

    async def run_process(proc: _Process, work: random.Random, delay: float) -> None:
        await trio.sleep(delay)
        clock = RoundTripClock(proc.rate, proc.offset, wall=_wall(proc.rate, proc.offset))
        with proc.scope:
            async with (
                backend.connect(proc) as lock,
                te.open_election(
                    lock,
                    identity=proc.identity,
                    lease_duration=lease,
                    renew_deadline=renew,
                    retry_period=retry,
                    stop_on_sigterm=False,
                    clock=clock,
                ) as election,
            ):
                proc.election = election
                while True:
                    async with election.leading() as leadership:
                        term = Term(
                            proc.name, proc.slot, proc.rate, leadership, trio.current_time()
                        )
                        outcome.terms.append(term)
                        try:
                            with history.leading(proc.name):
                                await trio.sleep(work.uniform(0.5, schedule.work))
                        finally:
                            term.reason = leadership.reason

    def start(
        nursery: trio.Nursery, slot: int, *, same_identity: bool = False, delay: float = 0.0
    ) -> None:
        candidate = schedule.candidates[slot]
        incarnations[slot] += 1
        previous = slots[slot]
        identity = (
            previous.identity
            if same_identity and previous is not None
            else f"c{slot}.{incarnations[slot]}"
        )
        proc = _Process(
            slot, incarnations[slot], identity, candidate.rate, candidate.watch, candidate.offset
        )
        slots[slot] = proc
        backend.prepare(proc)
        nursery.start_soon(run_process, proc, random.Random(rng.getrandbits(64)), delay)

    async def later(delay: float, action: Any, *args: Any) -> None:
        await trio.sleep(delay)
        action(*args)

    def restart(nursery: trio.Nursery, slot: int, same: bool) -> None:
        start(nursery, slot, same_identity=same)

    def target_of(event: Event) -> int:
        if event.target != LEADER:
            return event.target % len(slots)
        for proc in slots:
            if proc is not None and not proc.crashed and proc.is_leader:
                return proc.slot
        return 0

    async with trio.open_nursery() as nursery:
        for slot, candidate in enumerate(schedule.candidates):
            start(nursery, slot, delay=candidate.start)
        for event in sorted(schedule.events, key=lambda e: e.at):
            await trio.sleep_until(event.at)
            slot = target_of(event)
            proc = slots[slot]
            hit = slot if event.kind not in ("expire", "foreign") or event.code == 2 else -1
            outcome.applied.append((trio.current_time(), event, hit))
            if event.kind == "expire":
                backend.expire()
            elif event.kind == "foreign":
                backend.foreign(event.code, event.size, proc.identity if proc else "nobody")
            elif proc is None or proc.crashed:
                continue  # the slot waits for its restart
            elif event.kind in ("crash", "stop"):
                if event.kind == "crash":
                    if proc.is_leader:
                        outcome.leader_crashes.append(trio.current_time())
                    backend.cut_off(proc)
                proc.crashed = True
                proc.scope.cancel()
                nursery.start_soon(later, event.span, restart, nursery, slot, event.code == 1)
            elif backend.fault(proc, event):
                nursery.start_soon(later, event.span, _heal_if_alive, backend, proc)
        await trio.sleep_until(schedule.end_of_faults)
        await trio.testing.wait_all_tasks_blocked()  # the last restarts are under way

        def leading() -> bool:
            return any(p is not None and not p.crashed and p.is_leader for p in slots)

        # a fault of the next N requests is over only once they have been made: a
        # follower makes none until the lease runs out, then one per retry (17 failures
        # are over half a minute of retries). The quiet tail starts when they have.
        # Leaderless candidates keep making requests, so this ends (`give_up` guards it).
        give_up = trio.current_time() + 10 * quiet_tail(schedule)
        while (  # noqa: ASYNC110 - polls the run
            not leading()
            and trio.current_time() < give_up
            and any(p is not None and not p.crashed and backend.faults_pending(p) for p in slots)
        ):
            await trio.sleep(0.25)
        outcome.quiet_start = trio.current_time()
        give_up = outcome.quiet_start + quiet_tail(schedule)
        while trio.current_time() < give_up and not leading():  # noqa: ASYNC110 - polls the run
            await trio.sleep(0.25)
        await trio.sleep(schedule.retry)  # and a moment of its term
        outcome.end = trio.current_time()
        nursery.cancel_scope.cancel()
    return outcome


def _heal_if_alive(backend: _Backend, proc: _Process) -> None:
    if not proc.crashed:
        backend.heal(proc)


def _wall(rate: float, offset: float) -> Any:
    def wall() -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=offset + rate * trio.current_time())

    return wall


def quiet_tail(schedule: Schedule) -> float:
    """How long the run goes on after the last fault: enough for a leader to emerge."""
    longest = max(
        [schedule.lease, *(e.size for e in schedule.events if e.kind == "foreign" and e.code == 0)]
    )
    slowest = min(c.rate for c in schedule.candidates)
    # a run of 429s is answered one request at a time, each after its Retry-After
    asked = sum(e.size * e.code for e in schedule.events if e.kind == "429")
    return (2 * longest + schedule.renew + 5 * schedule.retry) / slowest + asked + 10.0


def recovery_bound(schedule: Schedule) -> float:
    """The longest a quiet election may stay leaderless: a lease (the longest written) by
    the slowest clock, then a jittered poll, a watch retry and the expiry delay."""
    return quiet_tail(schedule)


def percentile(values: list[float], q: float) -> float:
    """The `q`-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)
