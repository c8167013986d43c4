"""This library and kubernetes_asyncio's leader election on one Lease of a real apiserver.

kubernetes_asyncio (tests/peers/kasyncio_candidate.py: `LeaderElection` with its
`LeaseLock` under `asyncio.run`) is an asyncio port of the `kubernetes` Python client's
elector, and shares its record format and its gaps: no release, the transitions count never
raised, no request timeout. Handovers both ways after SIGTERM and SIGKILL are judged as in
test_mixed_fleet (never two leaders on the shared CLOCK_MONOTONIC, loose takeover bounds,
every version of the Lease); the tests after them measure its own failure modes, and where
its work runs into a successor's term they assert that every overlap involves it and print
how long it lasted. Timing: lease 4 s, renew deadline 3 s, retry 1 s.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from typing import TYPE_CHECKING

import pytest

from ._fleet import Fleet, Kind
from .test_mixed_fleet import HOLD, check_versions, finish, first_leader, follower, handover
from .test_peer_faults import cut_off_leader, frozen_leader, overlap, peer_overlaps

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane


@pytest.fixture
def fleet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(control_plane, tmp_path) as candidates:
        yield candidates


def test_trio_and_kubernetes_asyncio_hand_over_both_ways(fleet: Fleet) -> None:
    ours = first_leader(fleet, "trio", "trio-1")
    theirs = follower(fleet, "kasyncio", "ka-1", ours)
    handover(fleet, ours, theirs, signal.SIGTERM)  # released: taken at its next poll

    ours = follower(fleet, "trio", "trio-2", theirs)
    handover(fleet, theirs, ours, signal.SIGTERM)  # not released: we wait out its lease

    theirs = follower(fleet, "kasyncio", "ka-2", ours)
    handover(fleet, ours, theirs, signal.SIGKILL)

    ours = follower(fleet, "trio", "trio-3", theirs)
    handover(fleet, theirs, ours, signal.SIGKILL)

    finish(fleet, ours)
    check_versions(fleet)
    assert [v.holder for v in fleet.recorder.holders()] == [
        "trio-1", "", "ka-1", "trio-2", "ka-2", "trio-3", "",
    ]  # fmt: skip


@pytest.mark.chaos  # long: `nox -s chaos`
def test_a_rolling_fleet_of_both_kinds_never_has_two_leaders(fleet: Fleet) -> None:
    """Two of ours and two of its candidates on one Lease: the leader is stopped (SIGTERM
    or SIGKILL) and replaced by a new replica of its kind, as in a rolling update, six
    times. For the first four the followers of the other kind than the chosen successor's
    are frozen around the handover (so that both kinds take over from both); for the last
    two nobody is frozen and followers of both kinds race for the released or expired
    Lease: the loser's write is refused (409) or it reads the winner's record. Whoever
    takes over does so within the bound of its kind."""
    ours = first_leader(fleet, "trio", "trio-1")
    more: list[tuple[Kind, str]] = [("kasyncio", "ka-1"), ("trio", "trio-2"), ("kasyncio", "ka-2")]
    for kind, identity in more:
        follower(fleet, kind, identity, ours)
    made: dict[Kind, int] = {"trio": 2, "kasyncio": 2}
    rounds: list[tuple[signal.Signals, Kind | None]] = [
        (signal.SIGTERM, "kasyncio"),
        (signal.SIGTERM, "trio"),
        (signal.SIGKILL, "kasyncio"),
        (signal.SIGKILL, "trio"),
        (signal.SIGTERM, None),
        (signal.SIGKILL, None),
    ]
    bound = max(fleet.timing.crash_bound(k) for k in ("trio", "kasyncio"))
    for how, successor_kind in rounds:
        leader = fleet.leader()
        assert leader is not None
        others = [p for p in fleet.peers if p is not leader and p.exited_at is None]
        freeze = [p for p in others if successor_kind not in (None, p.kind)]
        time.sleep(HOLD)
        with fleet.frozen(*freeze):
            sent = leader.send(how)
            taken = fleet.recorder.wait_for_new_holder(
                leader.identity, since=sent, within=bound + 5
            )
            successor = next(p for p in fleet.peers if p.identity == taken.holder)
            started = successor.wait_for("started-leading", since=sent, within=5)
        leader.wait_exit()
        took = started.time - sent
        print(
            f"\n  {leader.kind} {leader.identity} --{how.name}--> {successor.kind} "
            f"{successor.identity}: {took:.3f} s{'' if freeze else ' (a race)'}"
        )
        assert successor_kind in (None, successor.kind)
        assert took < fleet.timing.crash_bound(successor.kind), took
        made[leader.kind] += 1
        prefix = "trio" if leader.kind == "trio" else "ka"
        follower(fleet, leader.kind, f"{prefix}-{made[leader.kind]}", successor)
    leader = fleet.leader()
    assert leader is not None
    finish(fleet, leader)
    check_versions(fleet)
    refused = [e.arg for p in fleet.peers for e in p.events if e.kind == "refused"]
    print(f"  writes of its candidates refused: {refused}")
    assert all(arg.startswith("409") for arg in refused), refused


def test_cancelling_its_election_leaves_the_work_running_and_the_lease_held(
    fleet: Fleet,
) -> None:
    """What its maintainers advise for SIGTERM (kubernetes_asyncio#411): cancel the task
    that runs `LeaderElection.run()`. That stops the renewing, but nothing is released and
    the work, a task of its own that `run()` cancels only when renewing *fails*, runs on
    until the program ends: into its successor's term when the program takes longer than
    the lease to shut down (12 s here, with a 4 s lease)."""
    grace = 3 * fleet.timing.lease
    theirs = fleet.start("kasyncio", "ka-1", extra_args=["--on-sigterm=cancel", f"--grace={grace}"])
    theirs.wait_for("started-leading", within=10)
    ours = follower(fleet, "trio", "trio-1", theirs)
    time.sleep(HOLD)
    sent = theirs.send(signal.SIGTERM)
    theirs.wait_for("cancelled", "run", since=sent, within=5)
    started = ours.wait_for(
        "started-leading", since=sent, within=fleet.timing.crash_bound("trio") + 5
    )
    assert theirs.leading, "its work stopped before the successor started"
    stopped = theirs.wait_for("stopped-leading", since=sent, within=grace + 5).time
    theirs.wait_exit()
    took, late = started.time - sent, stopped - started.time
    print(
        f"\n  run() cancelled; ours took over {took:.3f} s after SIGTERM (no release), "
        f"while its work ran on {late:.3f} s into our term, until the program ended"
    )
    # it waited out the lease from its last renew (ours counts from when it saw it)
    last = [v for v in fleet.recorder.versions if v.holder == "ka-1"][-1]
    assert started.time - last.time > fleet.timing.lease - 0.5
    assert theirs.count("lost") == 0, "onstopped_leading was called"
    # no release, and nothing written after the cancel: the Lease went from it to us
    between = [v.holder for v in fleet.recorder.versions if v.time >= sent]
    assert "" not in between, between
    assert between[-1] == "trio-1"
    assert "ka-1" not in between[between.index("trio-1") :]
    assert peer_overlaps(fleet, theirs) == [pytest.approx(late, abs=0.05)]
    assert ours.leading


def test_its_write_after_a_stale_read_gets_409_and_does_not_overwrite_our_term(
    fleet: Fleet,
) -> None:
    """The answer to its leader's read is held back (as by a slow network) past the lease:
    ours takes over meanwhile. Its write that follows goes out with the old
    resourceVersion, the apiserver refuses it with 409, and the Lease stays ours; its
    renew deadline passed while it waited, so it stops at its next check, one retry period
    later. Its work runs into our term from our start until the answer comes, and that
    retry period more."""
    theirs = first_leader(fleet, "kasyncio", "ka-1")
    ours = follower(fleet, "trio", "trio-1", theirs)
    time.sleep(HOLD)
    asked = theirs.send(signal.SIGUSR1)
    stalled = theirs.wait_for("stalled", "ka-1", since=asked, within=5)
    bound = fleet.timing.crash_bound("trio") + 5
    started = ours.wait_for("started-leading", since=stalled.time, within=bound)
    assert theirs.leading, "it stopped while its renew waited for an answer"
    resumed = theirs.send(signal.SIGUSR2)
    refused = theirs.wait_for("refused", since=resumed, within=5)
    assert refused.arg.startswith("409"), refused.arg
    stopped = theirs.wait_for("stopped-leading", since=resumed, within=5).time
    theirs.wait_for("lost", since=resumed, within=5)
    late = stopped - started.time
    print(
        f"\n  ours took over {started.time - stalled.time:.3f} s into its held read; its "
        f"write got {refused.arg}; its work stopped {stopped - resumed:.3f} s after the "
        f"answer came, {late:.3f} s into our term"
    )
    assert peer_overlaps(fleet, theirs) == [pytest.approx(late, abs=0.05)]
    # from its stall on, the Lease changed hands once, to us, and its refused write left
    # no trace (ours may be recorded a moment after ours logged its start)
    assert [v.holder for v in fleet.recorder.holders() if v.time > stalled.time] == ["trio-1"]
    theirs.wait_exit()
    assert ours.leading


def test_a_leader_in_another_time_zone_writes_its_local_time_as_utc(fleet: Fleet) -> None:
    """It stamps `renewTime` with `datetime.fromtimestamp()` (local time) and appends "Z":
    with TZ=JST-9 the Lease says the renew happened 9 h from now. Ours never judges a
    lease by a peer's timestamps (only by when it saw the record change), so the
    handovers both ways are those of a UTC peer."""
    tokyo = {"TZ": "JST-9"}
    theirs = fleet.start("kasyncio", "ka-1", env=tokyo)
    theirs.wait_for("started-leading", within=10)
    taken = fleet.recorder.wait_for_holder("ka-1", within=5)
    assert taken.record is not None
    assert taken.record.renew_time is not None
    ahead = taken.record.renew_time - dt.datetime.now(dt.UTC)
    print(f"\n  its renewTime is {ahead.total_seconds() / 3600:.3f} h ahead of the clock")
    assert abs(ahead - dt.timedelta(hours=9)) < dt.timedelta(minutes=1)

    ours = follower(fleet, "trio", "trio-1", theirs)
    handover(fleet, theirs, ours, signal.SIGKILL)
    theirs = fleet.start("kasyncio", "ka-2", env=tokyo)
    theirs.wait_for("new-leader", "trio-1", within=10)
    handover(fleet, ours, theirs, signal.SIGTERM)
    finish(fleet, theirs)
    check_versions(fleet)


def test_a_frozen_kubernetes_asyncio_leader_keeps_working_after_it_resumes(
    fleet: Fleet,
) -> None:
    """A leader stopped with SIGSTOP past its lease (a paused VM, a long pause): ours takes
    over after the lease; when it resumes, its work runs on until its renew deadline has
    passed on its renew attempts (it reads our record, sees a lease it counts from now, and
    retries), well into our term. It writes nothing over our term."""
    theirs = first_leader(fleet, "kasyncio", "ka-1")
    ours = follower(fleet, "trio", "trio-1", theirs)
    _, started, resumed = frozen_leader(fleet, theirs, ours)
    stopped = theirs.wait_for("stopped-leading", since=resumed, within=15).time
    late = stopped - resumed
    print(f"  kubernetes_asyncio kept working {late:.3f} s after SIGCONT, inside our term")
    theirs.wait_for("lost", since=resumed, within=5)
    overlaps = peer_overlaps(fleet, theirs)
    assert overlaps, "it stopped before it resumed work: the failure mode is gone"
    assert sum(overlaps) == pytest.approx(late, abs=0.05)
    assert late >= fleet.timing.renew - 0.5  # its renew deadline, counted after it resumed
    theirs.wait_exit()
    assert ours.leading, "the successor lost its lease"
    assert [v.holder for v in fleet.recorder.holders() if v.time > started] in ([], ["trio-1"])


def test_a_partitioned_kubernetes_asyncio_leader_leads_as_long_as_the_partition(
    fleet: Fleet,
) -> None:
    """Its requests have no timeout (aiohttp's `ClientTimeout()` without limits): a
    partitioned leader's renew hangs until the partition heals, and only then does it see
    that its renew deadline passed. Ours takes over after the lease; after the partition
    heals the held request cannot write over our term (a stale PUT gets 409, a late GET
    reads our record)."""
    theirs = fleet.start("kasyncio", "ka-1", proxied=True)
    theirs.wait_for("started-leading", within=10)
    ours = follower(fleet, "trio", "trio-1", theirs)
    _, started = cut_off_leader(fleet, theirs, ours)
    # its renew deadline had passed when ours took the lock (the lease is longer); ours has
    # renewed twice since: a client with a request timeout would have noticed
    fleet.recorder.wait_for_renewals(ours.identity, 3, within=15)
    assert theirs.leading, "it noticed while cut off"
    assert theirs.proxy is not None
    theirs.proxy.heal()
    healed = time.monotonic()
    late = overlap(theirs, started)
    print(
        f"  healed {healed - started:.3f} s into our term; "
        f"kubernetes_asyncio led {late:.3f} s into it"
    )
    assert late >= healed - started
    assert peer_overlaps(fleet, theirs) == [pytest.approx(late)]
    theirs.wait_exit()
    assert ours.leading
    assert [v.holder for v in fleet.recorder.versions if v.time > started] in (
        [],
        ["trio-1"] * len([v for v in fleet.recorder.versions if v.time > started]),
    )


def test_an_apiserver_restart_ends_its_election_with_the_work_left_running(
    control_plane: ControlPlane, fleet: Fleet
) -> None:
    """Its lock catches only `ApiException`: a refused connection while the apiserver
    restarts is an `aiohttp.ClientConnectorError` that comes out of `run()`, with the
    work's task neither cancelled nor told (`onstopped_leading` is not called). The peer
    then returns from `asyncio.run`, which cancels the work. Ours, following, rides the
    restart out and takes over once the Lease expires."""
    theirs = first_leader(fleet, "kasyncio", "ka-1")
    ours = follower(fleet, "trio", "trio-1", theirs)
    time.sleep(HOLD)
    began = time.monotonic()
    control_plane.restart_apiserver(down_for=2 * fleet.timing.retry)
    back = time.monotonic()
    error = theirs.wait_for("error", since=began, within=10)
    print(f"\n  apiserver down for {back - began:.3f} s; run() raised {error.arg}")
    assert error.arg.startswith(
        ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError")
    )
    stopped = theirs.wait_for("stopped-leading", since=began, within=5)
    assert stopped.time >= error.time, "the work stopped before run() raised"
    assert theirs.count("lost") == 0, "onstopped_leading was called"
    theirs.wait_exit()
    started = ours.wait_for("started-leading", since=began, within=back - began + 15)
    print(
        f"  it raised {error.time - began:.3f} s after the restart began; ours took over "
        f"{started.time - back:.3f} s after the apiserver was back"
    )
    assert ours.count("lost") == 0
    fleet.history().assert_one_leader()
