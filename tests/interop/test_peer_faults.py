"""A leader cut off from the apiserver, in a mixed fleet: what each kind of peer does.

The leader reaches the apiserver through a proxy that holds every byte while partitioned
and delivers them when the partition heals (tests/interop/_proxy.py); the follower, this
library, reaches it directly. Timing as in test_mixed_fleet: lease 4 s, renew deadline 3 s,
retry 1 s.

These tests measure the peers' own failure modes, and check that this library copes with
them: where a peer keeps working into its successor's term, the overlap is asserted to be
there and its size is printed, not hidden.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import pytest

from ._fleet import Fleet, Peer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane


@pytest.fixture
def fleet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(control_plane, tmp_path) as candidates:
        yield candidates


def cut_off_leader(fleet: Fleet, leader: Peer, successor: Peer) -> tuple[float, float]:
    """Partition `leader` once it has renewed the lock it leads; returns (partitioned at,
    successor's start), once the successor leads."""
    fleet.recorder.wait_for_renewals(leader.identity, 2, within=15)
    assert leader.leading
    assert leader.proxy is not None
    cut = time.monotonic()
    leader.proxy.partition()
    started = successor.wait_for("started-leading", since=cut, within=15)
    print(f"\n  {leader.kind} cut off; {successor.kind} leads after {started.time - cut:.3f} s")
    return cut, started.time


def peer_overlaps(fleet: Fleet, culprit: Peer) -> list[float]:
    """How long each overlap lasted; every one of them must involve `culprit`."""
    found: list[float] = []
    for a, b in fleet.history().overlaps():
        assert culprit.identity in (a.identity, b.identity), f"{a} overlaps {b}"
        found.append(min(a.end, b.end) - b.start)
    return found


def overlap(leader: Peer, successor_start: float) -> float:
    stopped = leader.wait_for("stopped-leading", within=15)
    return stopped.time - successor_start


def test_partitioned_clientgo_leader_works_into_its_successors_term(fleet: Fleet) -> None:
    """client-go cancels the leader's work only after its release attempt, which waits for
    a request timeout (max(1 s, renew deadline / 2)) when the apiserver cannot be reached:
    a known overlap of client-go's making, about that long."""
    go = fleet.start("clientgo", "go-1", proxied=True)
    go.wait_for("started-leading", within=10)
    ours = fleet.start("trio", "trio-1")
    ours.wait_for("new-leader", "go-1", within=10)
    _, started = cut_off_leader(fleet, go, ours)
    late = overlap(go, started)
    print(f"  client-go kept leading {late:.3f} s into the successor's term")
    assert 0 < late < fleet.timing.renew / 2 + 1.0
    assert peer_overlaps(fleet, go) == [pytest.approx(late)]
    assert go.proxy is not None
    go.proxy.heal()
    go.wait_exit()
    assert ours.leading, "the successor lost its lease"
    assert fleet.recorder.holders()[-1].holder == "trio-1"


def test_clientgo_late_release_clears_its_successors_lease(fleet: Fleet) -> None:
    """When the partition heals while client-go's release is under way, client-go re-reads
    the Lease, still believes it leads (its cached record), and writes holderIdentity "" over
    its successor's term. This library's leader stops at once when it sees that."""
    go = fleet.start("clientgo", "go-1", proxied=True)
    go.wait_for("started-leading", within=10)
    ours = fleet.start("trio", "trio-1")
    ours.wait_for("new-leader", "go-1", within=10)
    _, started = cut_off_leader(fleet, go, ours)
    assert go.proxy is not None
    go.proxy.heal()
    healed = time.monotonic()
    late = overlap(go, started)
    emptied = fleet.recorder.wait_for_holder("", since=started, within=5)
    lost = ours.wait_for("lost", since=started, within=5)
    reaction = ours.wait_for("stopped-leading", since=started, within=5).time - emptied.time
    print(
        f"  partition healed {healed - started:.3f} s into the successor's term; "
        f"client-go kept leading {late:.3f} s into it, then emptied the holder; "
        f"ours stopped {reaction * 1000:.1f} ms after the test's own watch saw it ({lost.arg})"
    )
    assert reaction < 1.0
    again = ours.wait_for("started-leading", since=emptied.time, within=5)  # campaigns again
    # client-go's work runs until its release has returned; the lock it emptied may be
    # taken at once, so ours can lead again while that work still runs
    print(f"  ours led again {again.time - emptied.time:.3f} s after the empty holder")
    overlaps = peer_overlaps(fleet, go)
    print(f"  overlaps with client-go's work: {', '.join(f'{o:.3f} s' for o in overlaps)}")
    assert sum(overlaps) <= late + 1e-3


def test_partitioned_kubernetes_python_client_leads_as_long_as_the_partition(
    fleet: Fleet,
) -> None:
    """The Python client sets no request timeout: its leader's renew hangs until the
    partition heals, and only then does it notice that it lost the lease."""
    py = fleet.start("kubepy", "py-1", proxied=True)
    py.wait_for("started-leading", within=10)
    ours = fleet.start("trio", "trio-1")
    ours.wait_for("new-leader", "py-1", within=10)
    _, started = cut_off_leader(fleet, py, ours)
    # its renew deadline had passed when the successor took the lock (the lease is longer);
    # the successor has renewed twice since: a peer with a request timeout would have noticed
    fleet.recorder.wait_for_renewals(ours.identity, 3, within=15)
    assert py.leading, "it noticed while cut off"
    assert py.proxy is not None
    py.proxy.heal()
    healed = time.monotonic()
    late = overlap(py, started)
    print(
        f"  healed {healed - started:.3f} s into the successor's term; kubepy led {late:.3f} s into it"
    )
    assert late >= healed - started
    assert peer_overlaps(fleet, py) == [pytest.approx(late)]
    assert ours.leading


def test_partitioned_trio_leader_stops_before_its_successor_starts(fleet: Fleet) -> None:
    """Ours: the work is cancelled at the renew deadline, before the lease can expire for
    anyone else; after the partition heals it writes nothing over its successor's term."""
    ours = fleet.start("trio", "trio-1", proxied=True)
    ours.wait_for("started-leading", within=10)
    go = fleet.start("clientgo", "go-1")
    go.wait_for("new-leader", "trio-1", within=10)
    cut, started = cut_off_leader(fleet, ours, go)
    stopped = ours.wait_for("stopped-leading", within=15).time
    print(
        f"  ours stopped {stopped - cut:.3f} s after the cut, "
        f"{started - stopped:.3f} s before client-go started"
    )
    assert stopped < started
    assert ours.proxy is not None
    healed = time.monotonic()
    ours.proxy.heal()
    # it has read the lock since the partition healed and follows client-go: whatever it
    # held back (its one release try after a loss) was delivered before that read
    ours.wait_for("new-leader", "go-1", since=healed, within=15)
    assert go.leading
    assert [v.holder for v in fleet.recorder.versions if v.time > cut] == ["go-1"] * len(
        [v for v in fleet.recorder.versions if v.time > cut]
    )
    fleet.history().assert_one_leader()
    go.send(signal.SIGTERM)
    go.wait_exit()


def frozen_leader(fleet: Fleet, leader: Peer, successor: Peer) -> tuple[float, float, float]:
    """SIGSTOP `leader` once it has renewed the lock it leads, until `successor` leads
    (and half a second more); then SIGCONT. Returns (frozen at, successor's start, resumed
    at)."""
    fleet.recorder.wait_for_renewals(leader.identity, 2, within=15)
    assert leader.leading
    frozen = leader.send(signal.SIGSTOP)
    started = successor.wait_for("started-leading", since=frozen, within=15).time
    time.sleep(0.5)
    resumed = leader.send(signal.SIGCONT)
    print(
        f"\n  {leader.kind} frozen; {successor.kind} leads {started - frozen:.3f} s later; "
        f"resumed {resumed - started:.3f} s into its term"
    )
    return frozen, started, resumed


def test_a_frozen_trio_leader_does_no_work_after_it_resumes(fleet: Fleet) -> None:
    """A leader of ours frozen with SIGSTOP (a stopped VM, a long GC pause) past its lease:
    its renew deadline passed while it was stopped, so when it resumes its work is
    cancelled at its first checkpoint, and it writes nothing over client-go's term."""
    ours = fleet.start("trio", "trio-1")
    ours.wait_for("started-leading", within=10)
    go = fleet.start("clientgo", "go-1")
    go.wait_for("new-leader", "trio-1", within=10)
    _, started, resumed = frozen_leader(fleet, ours, go)
    stopped = ours.wait_for("stopped-leading", since=resumed, within=5).time
    print(f"  ours stopped its work {1000 * (stopped - resumed):.1f} ms after SIGCONT")
    assert stopped - resumed < 0.5  # the unwinding only: no renew could have revived it
    # it has read the lock since it resumed and follows client-go: past its one chance to
    # write over client-go's term
    ours.wait_for("new-leader", "go-1", since=resumed, within=15)
    assert go.leading, "client-go lost the lease to the resumed leader"
    assert [v.holder for v in fleet.recorder.holders() if v.time > started] in ([], ["go-1"])
    # the only overlap is our unwinding after SIGCONT
    for length in peer_overlaps(fleet, ours):
        assert length < 0.5


def test_a_frozen_clientgo_leader_keeps_working_after_it_resumes(fleet: Fleet) -> None:
    """client-go's own failure mode, measured: a leader frozen past its lease keeps its
    work running for a while after SIGCONT (it stops only when its renew fails), well into
    its successor's term. Ours takes over after the lease and keeps the lease."""
    go = fleet.start("clientgo", "go-1")
    go.wait_for("started-leading", within=10)
    ours = fleet.start("trio", "trio-1")
    ours.wait_for("new-leader", "go-1", within=10)
    _, _, resumed = frozen_leader(fleet, go, ours)
    stopped = go.wait_for("stopped-leading", since=resumed, within=15).time
    late = stopped - resumed
    print(f"  client-go kept working {late:.3f} s after SIGCONT, inside the successor's term")
    overlaps = peer_overlaps(fleet, go)
    assert overlaps, "client-go stopped before it resumed work: the failure mode is gone"
    # the same span read two ways (its term after SIGCONT, cut by the successor's term), so
    # equal up to rounding: not a timing bound
    assert sum(overlaps) == pytest.approx(late, abs=1e-3)
    # the successor renews after client-go stopped: it kept the lease
    fleet.recorder.wait_for_renewals(ours.identity, 1, since=stopped, within=15)
    assert ours.leading, "the successor lost its lease"
    assert fleet.recorder.holders()[-1].holder == "trio-1"
