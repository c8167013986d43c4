"""Fault scenarios on a real control plane, and how each run is judged.

A scene is three candidates of this library, each a process of its own
(tests/peers/trio_candidate.py) reaching the apiserver through a Toxiproxy proxy of its own:
the first becomes the leader, the two others follow. A fault then hits the leader alone
(toxics on its proxy, SIGKILL, SIGSTOP) or everyone (an apiserver restart, etcd stopped),
and is healed. Every process prints its events on CLOCK_MONOTONIC, and an admin watch
records every version of the Lease, so that the whole run lies on one clock.

Each run is judged on what a user relies on:

1. **Never two leaders**: the leading intervals of all processes never overlap. A leader
   frozen by SIGSTOP past its deadline unwinds its cancelled work after SIGCONT: that
   unwinding (its work ran no step: the deadline had passed) is cut out, measured and
   reported, and must be short and the first thing the process does.
2. **The cut-off leader stops by its deadline**: its work is cancelled no later than
   `renew_deadline` after the last version of the Lease naming it (its last successful
   renew was sent before that version was written), and after the fault heals it writes
   nothing over its successor's term.
3. **A new leader soon after the holder is gone**: within `lease_duration + retry_period`
   after the last version naming the old holder (what the followers saw last); after an
   outage of the API itself, within `2.2 * retry_period` of the API serving again
   (followers poll at most that far apart while their watch is broken), whichever is
   later. Plus `MARGIN` for a loaded two-core machine.
4. What the fault must do to the leader: keep its term (`keeps`), end it (`loses`), or
   either (`either`: the outcome is reported, the checks above still hold).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from trio_election.testing import History

from ._report import RESULTS, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.event_lines import Event
    from harness.toxiproxy import Stream, Toxiproxy
    from interop._fleet import Fleet, Peer, Version

    from trio_election.testing import ControlPlane

Expect = Literal["keeps", "loses", "either"]

HOLD = 1.0
"""Seconds the leader leads, renewing, with its followers watching, before the fault."""
MARGIN = 0.5
"""Slack on every timing check (processes scheduled late on a busy machine)."""
SKEWED = Path(__file__).resolve().parent / "skewed_candidate.py"


@dataclass
class Scene:
    fleet: Fleet
    toxiproxy: Toxiproxy
    control_plane: ControlPlane
    leader: Peer
    followers: list[Peer]
    fault_at: float = 0.0
    """When the fault began (time.monotonic())."""
    healed_at: float = 0.0
    api_back: float | None = None
    """When the API served again after an outage of its own (None: no such outage)."""
    resumed_at: float | None = None
    """When a frozen leader was sent SIGCONT."""


@dataclass(frozen=True)
class Fault:
    id: str
    """The test id."""
    name: str
    """What happens, for the summary table."""
    expect: Expect
    inject: Callable[[Scene], None]
    """Injects the fault, waits while it lasts, heals it; sets the scene's times."""
    ci: bool = False
    """Part of the short subset that runs in every test run."""
    outage: bool = False
    """The API itself is down for everyone (not one candidate's network)."""
    follower_clock_rate: float | None = None
    """The first follower judges time on a clock this much faster than real time."""
    notes: tuple[str, ...] = field(default=())


# -- faults -------------------------------------------------------------------------------


def toxics(*specs: tuple[str, Stream, dict[str, float]], hold: float) -> Callable[[Scene], None]:
    """Toxics (type, stream, attributes) on the leader's proxy for `hold` seconds."""

    def inject(scene: Scene) -> None:
        proxy = scene.leader.toxic
        assert proxy is not None
        scene.fault_at = time.monotonic()
        for kind, stream, attributes in specs:
            proxy.add_toxic(kind, stream=stream, name=f"{kind}-{stream}", **attributes)
        time.sleep(max(0.0, scene.fault_at + hold - time.monotonic()))
        proxy.heal()
        scene.healed_at = time.monotonic()

    return inject


def blackhole(hold: float) -> Callable[[Scene], None]:
    """Nothing passes either way (`timeout` toxics that never close the connection)."""
    return toxics(
        ("timeout", "upstream", {"timeout": 0}),
        ("timeout", "downstream", {"timeout": 0}),
        hold=hold,
    )


def sigkill(scene: Scene) -> None:
    scene.fault_at = scene.leader.send(signal.SIGKILL)
    scene.leader.wait_exit()
    scene.healed_at = time.monotonic()


def sigstop(hold: float) -> Callable[[Scene], None]:
    def inject(scene: Scene) -> None:
        scene.fault_at = scene.leader.send(signal.SIGSTOP)
        time.sleep(hold)
        scene.resumed_at = scene.healed_at = scene.leader.send(signal.SIGCONT)

    return inject


def apiserver_restart(scene: Scene) -> None:
    scene.fault_at = time.monotonic()
    try:
        scene.control_plane.restart_apiserver()
    finally:
        scene.control_plane.ensure_running()
    scene.api_back = scene.healed_at = time.monotonic()


def etcd_stopped(hold: float) -> Callable[[Scene], None]:
    def inject(scene: Scene) -> None:
        scene.fault_at = time.monotonic()
        try:
            scene.control_plane.stop_etcd()
            time.sleep(max(0.0, scene.fault_at + hold - time.monotonic()))
            scene.control_plane.start_etcd()
        finally:
            scene.control_plane.ensure_running()
        scene.api_back = scene.healed_at = time.monotonic()

    return inject


LEASE, RENEW, RETRY = 4, 3, 1  # interop._fleet.Timing's defaults, used by every scene

FAULTS: tuple[Fault, ...] = (
    Fault(
        "blackhole-past-lease",
        "leader cut off (black hole), healed after its lease ran out",
        "loses",
        blackhole(LEASE + 2.0),
        ci=True,
    ),
    Fault(
        "blackhole-before-deadline",
        "leader cut off (black hole) for 1 s, below its renew deadline",
        "either",
        blackhole(1.0),
    ),
    Fault(
        "blackhole-between",
        "leader cut off (black hole), healed between deadline and expiry",
        "either",
        blackhole(RENEW + 0.5),
    ),
    Fault(
        "answers-dropped",
        "leader's answers dropped, its requests still arrive",
        "loses",
        toxics(("timeout", "downstream", {"timeout": 0}), hold=LEASE + 2.0),
    ),
    Fault(
        "latency-below",
        f"latency 1 s on answers (below the {RENEW} s renew deadline)",
        "keeps",
        toxics(("latency", "downstream", {"latency": 1000}), hold=LEASE + 2.0),
    ),
    Fault(
        "latency-above",
        f"latency 5 s on answers (above the {RENEW} s renew deadline)",
        "loses",
        toxics(("latency", "downstream", {"latency": 5000}), hold=LEASE + 3.0),
        ci=True,
    ),
    Fault(
        "requests-late",
        "latency 2.5 s on requests (renewals applied late)",
        "either",
        toxics(("latency", "upstream", {"latency": 2500}), hold=LEASE + 3.0),
    ),
    Fault(
        "reset-peer",
        "every connection of the leader reset (reset_peer)",
        "loses",
        toxics(
            ("reset_peer", "upstream", {"timeout": 0}),
            ("reset_peer", "downstream", {"timeout": 0}),
            hold=LEASE + 2.0,
        ),
    ),
    Fault(
        "slicer",
        "answers trickle: 16-byte slices every 20 ms (slicer)",
        "either",
        toxics(
            ("slicer", "downstream", {"average_size": 16, "size_variation": 8, "delay": 20000}),
            hold=LEASE + 4.0,
        ),
    ),
    Fault(
        "bandwidth",
        "answers at 1 KB/s (bandwidth)",
        "either",
        toxics(("bandwidth", "downstream", {"rate": 1}), hold=LEASE + 4.0),
    ),
    Fault(
        "limit-data",
        "connections closed after 10 kB of answers (limit_data)",
        "either",
        toxics(("limit_data", "downstream", {"bytes": 10000}), hold=LEASE + 4.0),
    ),
    Fault(
        "skewed-follower",
        "leader cut off, a follower's clock 25 % fast (inside 4/3)",
        "loses",
        blackhole(LEASE + 2.0),
        follower_clock_rate=1.25,
    ),
    Fault("sigkill", "leader killed (SIGKILL)", "loses", sigkill, ci=True),
    Fault(
        "sigstop",
        "leader frozen (SIGSTOP) past its lease, then resumed",
        "loses",
        sigstop(LEASE + 2.0),
        ci=True,
    ),
    Fault(
        "apiserver-restart",
        "kube-apiserver restarted",
        "either",
        apiserver_restart,
        outage=True,
    ),
    Fault(
        "etcd-stopped",
        f"etcd stopped for {LEASE + 2} s, then started",
        "loses",
        etcd_stopped(LEASE + 2.0),
        outage=True,
    ),
)


# -- a run --------------------------------------------------------------------------------


def set_scene(
    fleet: Fleet, toxiproxy: Toxiproxy, control_plane: ControlPlane, fault: Fault
) -> Scene:
    assert (fleet.timing.lease, fleet.timing.renew, fleet.timing.retry) == (LEASE, RENEW, RETRY)
    client = toxiproxy.client
    leader = fleet.start("trio", "leader", toxiproxy=client)
    leader.wait_for("started-leading", within=15)
    followers: list[Peer] = []
    for number in (1, 2):
        if number == 1 and fault.follower_clock_rate is not None:
            rate = f"--clock-rate={fault.follower_clock_rate}"
            peer = fleet.start(
                "trio", "follower-1", toxiproxy=client, program=SKEWED, extra_args=[rate]
            )
        else:
            peer = fleet.start("trio", f"follower-{number}", toxiproxy=client)
        followers.append(peer)
    for peer in followers:
        peer.wait_for("new-leader", "leader", within=10)
    time.sleep(HOLD)
    assert fleet.leader() is leader, "the first candidate should lead"
    return Scene(fleet, toxiproxy, control_plane, leader, followers)


def run(fleet: Fleet, toxiproxy: Toxiproxy, control_plane: ControlPlane, fault: Fault) -> None:
    """Set the scene, inject the fault, let the fleet settle, judge the run (appending
    its outcome to the session's results first, so that failed runs are counted too)."""
    scene = set_scene(fleet, toxiproxy, control_plane, fault)
    fault.inject(scene)
    settle(scene, fault)
    outcome, failures = judge(scene, fault)
    RESULTS.append(outcome)
    print(f"\n  {fault.name}: {brief(outcome)}")
    if failures:
        details = "\n".join(f"  {peer}:\n{peer.describe()}" for peer in fleet.peers)
        pytest.fail("\n".join(failures) + "\n" + details, pytrace=False)


def brief(outcome: Outcome) -> str:
    parts = [f"overlaps {outcome.overlaps}", "kept its term" if outcome.kept else "lost it"]
    for label, value in (
        ("stopped after", outcome.stopped_after),
        ("before its deadline by", outcome.deadline_slack),
        ("new leader after", outcome.recovery),
        ("bound", outcome.recovery_bound),
        ("unwound after SIGCONT in", outcome.unwind_after_resume),
    ):
        if value is not None:
            parts.append(f"{label} {value:.3f} s")
    if outcome.successor is not None:
        parts.append(f"next: the {outcome.successor}")
    return ", ".join(parts)


def settle(scene: Scene, fault: Fault) -> None:
    """Wait until a term starts after the fault, or until the leader has clearly kept its
    term (a renew deadline past the heal), then two retry periods and a second more: what
    the old leader does after the heal is seen too."""
    t = scene.fleet.timing
    deadline = time.monotonic() + t.lease + 3 * t.retry + 10.0
    while fault.expect != "keeps" and time.monotonic() < deadline:
        if any(_first(peer, ("started-leading",), scene.fault_at) for peer in scene.fleet.peers):
            break
        stopped = _first(scene.leader, ("stopped-leading", "process-exit"), scene.fault_at)
        if stopped is None and time.monotonic() > scene.healed_at + t.renew + MARGIN:
            break
        time.sleep(0.05)
    time.sleep(2 * t.retry + 1.0)


def _first(peer: Peer, kinds: tuple[str, ...], since: float) -> Event | None:
    return next((e for e in list(peer.events) if e.kind in kinds and e.time >= since), None)


def _last_naming(versions: list[Version], holder: str, before: float) -> Version | None:
    named = [v for v in versions if v.holder == holder and v.time <= before]
    return named[-1] if named else None


def judge(scene: Scene, fault: Fault) -> tuple[Outcome, list[str]]:
    """The outcome of a run and what went wrong in it (module documentation: 1-4)."""
    fleet, leader, t = scene.fleet, scene.leader, scene.fleet.timing
    outcome = Outcome(fault.name, notes=list(fault.notes))
    failures: list[str] = []
    now = time.monotonic()
    versions = list(fleet.recorder.versions)

    # 2. the leader's stop, by its deadline
    stop = _first(leader, ("stopped-leading", "process-exit"), scene.fault_at)
    last_seen = _last_naming(versions, leader.identity, stop.time if stop else now)
    if stop is not None:
        outcome.stopped_after = stop.time - scene.fault_at
        if last_seen is not None and fault.id != "sigkill":
            latest = last_seen.time + t.renew
            outcome.deadline_slack = latest - stop.time
            frozen_past = scene.resumed_at is not None and scene.resumed_at > latest
            if stop.time > latest + MARGIN and not frozen_past:
                failures.append(
                    f"the leader stopped {stop.time - latest:.3f} s after its deadline "
                    f"(last renew seen {last_seen.time - scene.fault_at:+.3f} s from the fault)"
                )
    outcome.kept = stop is None

    # 1. never two leaders (a frozen leader's unwinding after SIGCONT cut out)
    intervals = [iv for peer in fleet.peers for iv in peer.intervals(now)]
    if scene.resumed_at is not None and stop is not None and last_seen is not None:
        resumed = scene.resumed_at
        if resumed > last_seen.time + t.renew:  # its deadline passed while it was frozen
            unwinding = [
                iv for iv in intervals if iv.identity == leader.identity and iv.start == resumed
            ]
            for piece in unwinding:
                intervals.remove(piece)
                outcome.unwind_after_resume = piece.end - piece.start
            after = [e for e in list(leader.events) if e.time >= resumed]
            if after and after[0].kind != "stopped-leading":
                failures.append(f"after SIGCONT the leader did {after[0]} before stopping")
            if outcome.unwind_after_resume is not None and outcome.unwind_after_resume > MARGIN:
                failures.append(
                    f"the resumed leader took {outcome.unwind_after_resume:.3f} s to stop"
                )
    overlaps = History(intervals=intervals).overlaps()
    outcome.overlaps = [min(a.end, b.end) - b.start for a, b in overlaps]
    failures += [f"two leaders: {a} overlaps {b}" for a, b in overlaps]

    # 3. the next leader, and how soon
    starts = [
        (event, peer)
        for peer in fleet.peers
        for event in list(peer.events)
        if event.kind == "started-leading" and event.time > scene.fault_at
    ]
    starts.sort(key=lambda pair: pair[0].time)
    if starts and stop is not None:
        began, successor = starts[0]
        gone = _last_naming(versions, leader.identity, began.time)
        holder_gone = gone.time if gone is not None else scene.fault_at
        bound = holder_gone + t.lease + t.retry + MARGIN
        if scene.api_back is not None:
            bound = max(holder_gone + t.lease, scene.api_back + 2.2 * t.retry) + MARGIN
        outcome.recovery = began.time - scene.fault_at
        outcome.successor = "leader" if successor is leader else "follower"
        outcome.recovery_bound = bound - scene.fault_at
        if began.time > bound:
            failures.append(
                f"{successor.identity} led {began.time - bound:.3f} s after the bound "
                f"({outcome.recovery:.3f} s after the fault)"
            )
        if not fault.outage:
            # nothing written over the successor's term
            taken = next(
                (
                    v
                    for v in versions
                    if v.holder == successor.identity and v.time >= began.time - 1
                ),
                None,
            )
            if taken is not None:
                later = [v.holder for v in versions if v.time > taken.time]
                if any(holder != successor.identity for holder in later):
                    failures.append(f"written over {successor.identity}'s term: {later}")

    # 4. what the fault was to do to the leader
    if fault.expect == "keeps":
        if stop is not None:
            failures.append(
                f"the leader lost its term ({stop.kind} after {outcome.stopped_after:.3f} s)"
            )
        if starts:
            failures.append(f"{starts[0][1].identity} started leading while the leader kept it")
    elif fault.expect == "loses" and stop is None:
        failures.append("the leader kept its term through the fault")
    if stop is not None and not starts:
        failures.append("nobody led after the leader stopped")
    return outcome, failures
