"""Mixed fleets on one lock of a real kube-apiserver: this library, client-go (v0.36.3,
tools/leaderelection, LeaseLock, ReleaseOnCancel) and the `kubernetes` Python client.

Every candidate is a process of its own (tests/peers/), stopped the ways Kubernetes stops
pods: SIGTERM (client-go and this library release the lock; the Python client cannot) and
SIGKILL. To choose who takes over when there are several followers, the others are frozen
with SIGSTOP around the handover. Each test judges:

- never two leaders: the leading intervals on the shared CLOCK_MONOTONIC never overlap
  (a peer's work runs from its started-leading line to its stopped-leading line or its
  death; the time a process spends stopped is cut out);
- how long a takeover took (loose bounds: `Timing.crash_bound`);
- every version of the lock, as this library reads it: a release is holderIdentity ""
  with leaseDurationSeconds 1 and the transitions unchanged; a new holder raises the
  transitions by one, except the `kubernetes` Python client, which never does.

Timing: lease 4 s, renew deadline 3 s, retry 1 s for everyone (whole seconds: the Python
client cannot take fractions).
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import pytest

from ._fleet import Fleet, Kind, Peer, Version

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane

HOLD = 1.5
"""Seconds a leader leads, renewing, before it is stopped."""

RELEASING: frozenset[Kind] = frozenset({"trio", "clientgo"})
"""Kinds that release the lock when stopped with SIGTERM."""

KEEPS_TRANSITIONS: frozenset[Kind] = frozenset({"kubepy", "kasyncio"})
"""Kinds that take the lock without raising the transitions count (the Python clients)."""


@pytest.fixture
def fleet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(control_plane, tmp_path) as candidates:
        yield candidates


def first_leader(fleet: Fleet, kind: Kind, identity: str) -> Peer:
    peer = fleet.start(kind, identity)
    peer.wait_for("started-leading", within=10)
    fleet.recorder.wait_for_holder(identity, within=5)
    return peer


def follower(fleet: Fleet, kind: Kind, identity: str, leader: Peer) -> Peer:
    """Start a candidate and wait until it has seen `leader` hold the lock (where it says)."""
    peer = fleet.start(kind, identity)
    if kind != "kubepy":  # it reports nothing before it leads
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
    """Stop `leader` with `how` while `freeze` are stopped; `successor` must take over.

    Checks the lock's versions in between and returns the takeover time: from the signal
    to the successor's started-leading line."""
    bound = fleet.timing.crash_bound(successor.kind)
    # the leader renews twice with the successor watching or polling
    fleet.recorder.wait_for_renewals(leader.identity, 2, since=time.monotonic(), within=15)
    assert fleet.leader() is leader
    with fleet.frozen(*freeze):
        sent = leader.send(how)
        started = successor.wait_for("started-leading", since=sent, within=bound + 5)
    leader.wait_exit()
    took = started.time - sent
    released = how == signal.SIGTERM and leader.kind in RELEASING
    print(
        f"\n  {leader.kind} {leader.identity} --{how.name}--> {successor.kind} "
        f"{successor.identity}: took over after {took:.3f} s"
        f"{' (released)' if released else ''}"
    )
    assert took < bound, f"takeover took {took:.3f} s, more than {bound:g} s"

    taken = fleet.recorder.wait_for_holder(successor.identity, since=sent, within=5)
    between = [v.holder for v in fleet.recorder.versions if sent <= v.time <= taken.time]
    # a renew of the old leader that was on its way when the signal was sent may land still
    holders = between[next(i for i, h in enumerate(between) if h != leader.identity) :]
    if released:
        # the leader's last word is a release, and the successor took the released lock
        assert holders == ["", successor.identity], holders
    else:
        assert holders == [successor.identity], holders
    if successor.kind == "trio":
        term = successor.wait_for("term", since=sent, within=5)
        assert taken.record is not None
        assert int(term.arg) == taken.record.leader_transitions
    return took


def check_versions(fleet: Fleet, *, kubepy_drops_transitions: bool = False) -> None:
    """Every version of the lock as this library reads it, judged against its writer."""
    previous: Version | None = None
    for version in fleet.recorder.versions:
        record = version.record
        assert record is not None, f"unreadable record: {version.raw!r}"
        if previous is None:
            assert version.type == "ADDED"
            assert record.leader_transitions == 0
        else:
            assert previous.record is not None
            before = previous.record.leader_transitions
            if record.holder_identity == previous.holder:
                assert record.leader_transitions == before, "a renew changed the transitions"
            elif record.holder_identity == "":
                assert fleet.kind_of(previous.holder or "") in RELEASING
                assert record.lease_duration_seconds == 1
                assert record.leader_transitions == before
            elif fleet.kind_of(record.holder_identity) in KEEPS_TRANSITIONS:
                # its known gap: it never raises the count (on a ConfigMap it drops it)
                expected = 0 if kubepy_drops_transitions else before
                assert record.leader_transitions == expected, version.raw
            else:
                assert record.leader_transitions == before + 1, version.raw
            if record.holder_identity:
                assert record.lease_duration_seconds == fleet.timing.lease
        previous = version


def finish(fleet: Fleet, last: Peer) -> None:
    """Stop the last leader (releasing, if it can), then judge the whole run."""
    fleet.recorder.wait_for_renewals(last.identity, 2, since=time.monotonic(), within=15)
    sent = last.send(signal.SIGTERM)
    last.wait_exit()
    if last.kind in RELEASING:
        fleet.recorder.wait_for_holder("", since=sent, within=5)
    history = fleet.history()
    for interval in history.closed():
        print(f"  {interval.identity:8} led {interval.end - interval.start:7.3f} s")
    history.assert_one_leader()


def test_trio_and_clientgo_hand_over_both_ways(fleet: Fleet) -> None:
    ours = first_leader(fleet, "trio", "trio-1")
    go = follower(fleet, "clientgo", "go-1", ours)
    handover(fleet, ours, go, signal.SIGTERM)

    ours = follower(fleet, "trio", "trio-2", go)
    handover(fleet, go, ours, signal.SIGTERM)

    go = follower(fleet, "clientgo", "go-2", ours)
    handover(fleet, ours, go, signal.SIGKILL)

    ours = follower(fleet, "trio", "trio-3", go)
    handover(fleet, go, ours, signal.SIGKILL)

    finish(fleet, ours)
    check_versions(fleet)
    # client-go reads our records as we do: it named our candidates as leaders
    assert [v.holder for v in fleet.recorder.holders()] == [
        "trio-1", "", "go-1", "", "trio-2", "go-2", "trio-3", "",
    ]  # fmt: skip


def test_trio_and_kubernetes_python_client(fleet: Fleet) -> None:
    ours = first_leader(fleet, "trio", "trio-1")
    py = follower(fleet, "kubepy", "py-1", ours)
    handover(fleet, ours, py, signal.SIGTERM)  # released: taken at its next poll

    ours = follower(fleet, "trio", "trio-2", py)
    handover(fleet, py, ours, signal.SIGTERM)  # not released: we wait out its lease

    py = follower(fleet, "kubepy", "py-2", ours)
    handover(fleet, ours, py, signal.SIGKILL)

    ours = follower(fleet, "trio", "trio-3", py)
    handover(fleet, py, ours, signal.SIGKILL)

    finish(fleet, ours)
    check_versions(fleet)


@pytest.mark.chaos  # long: `nox -s chaos`
def test_all_three_on_one_lease(fleet: Fleet) -> None:
    ours = first_leader(fleet, "trio", "trio-1")
    go = follower(fleet, "clientgo", "go-1", ours)
    py = follower(fleet, "kubepy", "py-1", ours)
    handover(fleet, ours, go, signal.SIGTERM, freeze=(py,))

    ours = follower(fleet, "trio", "trio-2", go)
    handover(fleet, go, py, signal.SIGTERM, freeze=(ours,))  # client-go releases to it

    go = follower(fleet, "clientgo", "go-2", py)
    handover(fleet, py, go, signal.SIGKILL, freeze=(ours,))

    py = follower(fleet, "kubepy", "py-2", go)
    handover(fleet, go, ours, signal.SIGKILL, freeze=(py,))

    finish(fleet, ours)
    check_versions(fleet)


def test_trio_and_kubernetes_python_client_on_a_configmap(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with Fleet(control_plane, tmp_path, resource="configmaps") as fleet:
        ours = first_leader(fleet, "trio", "trio-1")
        second = follower(fleet, "trio", "trio-2", ours)
        handover(fleet, ours, second, signal.SIGTERM)  # term 1

        py = follower(fleet, "kubepy", "py-1", second)
        handover(fleet, second, py, signal.SIGTERM)  # it drops leaderTransitions

        ours = follower(fleet, "trio", "trio-3", py)
        handover(fleet, py, ours, signal.SIGKILL)  # term 1 again

        finish(fleet, ours)
        check_versions(fleet, kubepy_drops_transitions=True)
        terms = [int(p.wait_for("term", within=1).arg) for p in (second, ours)]
        assert terms == [1, 1], "after the Python client's term the count starts again"
