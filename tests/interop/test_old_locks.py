"""The locks client-go has removed, shared with an old client-go on a real kube-apiserver.

Kubernetes components elected their leaders on the `control-plane.alpha.kubernetes.io/leader`
annotation of an Endpoints object until client-go v0.23 (`endpoints`), and moved to Leases
through `endpointsleases`, a MultiLock that writes the record to both objects, which
client-go kept until v0.27. A fleet still on those locks, or half-way through that
migration, may mix such replicas with ours. The peers (tests/peers/clientgo_old) are one
program built against client-go v0.23.17 and v0.27.16, campaigning with `resourcelock.New`
as the components of those releases did, with ReleaseOnCancel; the Lease-only replicas of
the last step are today's client-go (tests/peers/clientgo, v0.36).

Every candidate may use both Endpoints and Leases (`get, create, update, patch, watch,
list`). Timing as in test_mixed_fleet: lease 4 s, renew deadline 3 s, retry 1 s. Each test
judges: never two leaders (the intervals on the shared CLOCK_MONOTONIC never overlap), a
takeover within a loose bound, and every version of each object as this library reads it.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import pytest

from ._fleet import Fleet, Kind, LockRecorder, LockType, Peer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane

HOLD = 1.5
"""Seconds a leader leads, renewing, before it is stopped."""


@pytest.fixture
def fleet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(control_plane, tmp_path, resource="endpoints", rights=("leases",)) as candidates:
        candidates.watch("leases")
        yield candidates


def start(fleet: Fleet, kind: Kind, identity: str, lock: LockType, leader: Peer | None) -> Peer:
    """Start a candidate on `lock`; it must lead at once when `leader` is None, else see
    `leader` hold the lock."""
    peer = fleet.start(kind, identity, lock=lock)
    if leader is None:
        peer.wait_for("started-leading", within=10)
    else:
        peer.wait_for("new-leader", leader.identity, within=10)
    return peer


def handover(
    fleet: Fleet,
    leader: Peer,
    successor: Peer,
    how: signal.Signals,
    *,
    freeze: tuple[Peer, ...] = (),
) -> float:
    """Stop `leader` with `how` while `freeze` are stopped; `successor` must take over
    within `Timing.crash_bound`. Returns the time from the signal to its first work."""
    bound = fleet.timing.crash_bound(successor.kind)
    time.sleep(HOLD)  # the leader renews a few times with the others following
    assert fleet.leader() is leader
    with fleet.frozen(*freeze):
        sent = leader.send(how)
        started = successor.wait_for("started-leading", since=sent, within=bound + 5)
    leader.wait_exit()
    took = started.time - sent
    print(
        f"\n  {leader.kind} {leader.identity} --{how.name}--> {successor.kind} "
        f"{successor.identity}: took over after {took:.3f} s"
    )
    assert took < bound, f"takeover took {took:.3f} s, more than {bound:g} s"
    return took


def check_versions(fleet: Fleet, recorder: LockRecorder, *, created_with: int = 0) -> None:
    """Every version of one object: readable, created with `created_with` transitions, a
    release has client-go's shape, a renew keeps the transitions, a new holder raises them
    by one."""
    previous = None
    for version in recorder.versions:
        record = version.record
        assert record is not None, f"unreadable record: {version.raw!r}"
        if previous is None or previous.record is None:
            assert version.type == "ADDED"
            assert record.leader_transitions == created_with, version.raw
        else:
            before = previous.record.leader_transitions
            if record.holder_identity == previous.holder:
                assert record.leader_transitions == before, "a renew changed the transitions"
            elif record.holder_identity == "":
                assert record.lease_duration_seconds == 1, version.raw
                assert record.leader_transitions == before, version.raw
            else:
                assert record.leader_transitions == before + 1, version.raw
        if record.holder_identity:
            assert record.lease_duration_seconds == fleet.timing.lease, version.raw
        previous = version


def finish(fleet: Fleet, last: Peer) -> None:
    """Stop the last leader with SIGTERM (it releases), then judge the whole run."""
    time.sleep(HOLD)
    last.send(signal.SIGTERM)
    last.wait_exit()
    history = fleet.history()
    for interval in history.closed():
        print(f"  {interval.identity:10} led {interval.end - interval.start:7.3f} s")
    history.assert_one_leader()


def holders(recorder: LockRecorder) -> list[str | None]:
    return [version.holder for version in recorder.holders()]


@pytest.mark.parametrize(
    ("lock", "old"),
    [("endpoints", "clientgo-v0.23"), ("endpointsleases", "clientgo-v0.27")],
)
def test_trio_and_old_clientgo_hand_over_both_ways(fleet: Fleet, lock: LockType, old: Kind) -> None:
    """Ours (`"<lock>/<ns>/<name>"`) and client-go of the last release with that lock
    hand over to each other: released on SIGTERM, expired after SIGKILL."""
    go = start(fleet, old, "go-1", lock, None)
    ours = start(fleet, "trio", "trio-1", lock, go)
    handover(fleet, go, ours, signal.SIGTERM)

    go = start(fleet, old, "go-2", lock, ours)
    handover(fleet, ours, go, signal.SIGTERM)

    ours = start(fleet, "trio", "trio-2", lock, go)
    handover(fleet, go, ours, signal.SIGKILL)

    go = start(fleet, old, "go-3", lock, ours)
    handover(fleet, ours, go, signal.SIGKILL)

    finish(fleet, go)
    expected = ["go-1", "", "trio-1", "", "go-2", "trio-2", "go-3", ""]
    check_versions(fleet, fleet.recorder)
    assert holders(fleet.recorder) == expected
    leases = fleet.recorders["leases"]
    if lock == "endpointsleases":  # the MultiLock writes the same record to the Lease
        check_versions(fleet, leases)
        assert holders(leases) == expected
        # the same record (the annotation keeps whole seconds, the Lease microseconds)
        last = [rec.versions[-1].record for rec in (fleet.recorder, leases)]
        assert len({(r.holder_identity, r.leader_transitions) for r in last if r}) == 1
    else:
        assert leases.versions == [], "nobody on the Endpoints lock may touch the Lease"


def test_a_mixed_fleet_moves_from_endpoints_to_leases_one_replica_at_a_time(
    fleet: Fleet,
) -> None:
    """The migration client-go prescribed, rolled out over a fleet of two replicas that
    mixes client-go and ours: `endpoints` -> `endpointsleases` -> `leases`, each rollout
    starting a new replica before stopping an old one (SIGTERM, as a Deployment does).
    The leader is the old replica stopped where that makes a replica on the new lock take
    over from one on the old lock (the other follower is frozen for that handover)."""
    # the fleet on the old lock
    go_endpoints = start(fleet, "clientgo-v0.23", "go-endpoints", "endpoints", None)
    ours_endpoints = start(fleet, "trio", "trio-endpoints", "endpoints", go_endpoints)

    # rollout 1, endpoints -> endpointsleases: ours on the MultiLock follows client-go
    # v0.23 on the Endpoints (no Lease yet), then takes over and creates the Lease
    ours_multi = start(fleet, "trio", "trio-multi", "endpointsleases", go_endpoints)
    handover(fleet, go_endpoints, ours_multi, signal.SIGTERM, freeze=(ours_endpoints,))
    ours_endpoints.wait_for("new-leader", "trio-multi", within=5)  # it reads our Endpoints
    go_multi = start(fleet, "clientgo-v0.27", "go-multi", "endpointsleases", ours_multi)
    time.sleep(HOLD)
    ours_endpoints.send(signal.SIGTERM)  # the last replica on the old lock goes
    ours_endpoints.wait_exit()

    # rollout 2, endpointsleases -> leases: client-go v0.36 on the Lease takes over from
    # ours on the MultiLock; client-go v0.27 on the MultiLock then sees a released
    # Endpoints and a held Lease, an unknown holder that it must wait out for ever
    go_lease = start(fleet, "clientgo", "go-lease", "leases", ours_multi)
    handover(fleet, ours_multi, go_lease, signal.SIGTERM, freeze=(go_multi,))
    time.sleep(2 * fleet.timing.lease)  # longer than any lease: go-multi must not take it
    assert fleet.leader() is go_lease
    assert not go_multi.leading
    ours_lease = start(fleet, "trio", "trio-lease", "leases", go_lease)
    go_multi.send(signal.SIGTERM)
    go_multi.wait_exit()

    # the fleet on the Lease alone hands over as usual
    handover(fleet, go_lease, ours_lease, signal.SIGTERM)
    finish(fleet, ours_lease)

    endpoints, leases = fleet.recorders["endpoints"], fleet.recorders["leases"]
    check_versions(fleet, endpoints)
    # the MultiLock creates the Lease with the record it writes: one change of holder so far
    check_versions(fleet, leases, created_with=1)
    assert holders(endpoints) == ["go-endpoints", "", "trio-multi", ""]
    assert holders(leases) == ["trio-multi", "", "go-lease", "", "trio-lease", ""]
