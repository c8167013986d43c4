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

import signal
import time
from typing import TYPE_CHECKING

import pytest

from ._fleet import Fleet, Peer
from .test_mixed_fleet import HOLD, check_versions, finish, first_leader, follower, handover

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
