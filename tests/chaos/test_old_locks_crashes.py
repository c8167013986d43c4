"""The Endpoints -> Lease migration of tests/interop/test_old_locks.py with a crash at every
step: each leader is killed (SIGKILL), so every handover waits out a lease, across lock
types (client-go v0.23 on `endpoints`, ours and client-go v0.27 on `endpointsleases`,
client-go v0.36 and ours on `leases`). Long: marked `chaos`."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import pytest
from interop._fleet import Fleet
from interop.test_old_locks import HOLD, check_versions, finish, handover, holders, start

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane

pytestmark = [pytest.mark.control_plane, pytest.mark.chaos]


def test_a_mixed_fleet_migrates_to_leases_through_crashes(
    chaos_run: int, control_plane: ControlPlane, tmp_path: Path
) -> None:
    with Fleet(control_plane, tmp_path, resource="endpoints", rights=("leases",)) as fleet:
        leases = fleet.watch("leases")
        go_endpoints = start(fleet, "clientgo-v0.23", "go-endpoints", "endpoints", None)
        ours_endpoints = start(fleet, "trio", "trio-endpoints", "endpoints", go_endpoints)

        # rollout 1: the old leader dies; ours on the MultiLock waits out its Endpoints
        # record (no Lease yet) and takes both objects
        ours_multi = start(fleet, "trio", "trio-multi", "endpointsleases", go_endpoints)
        handover(fleet, go_endpoints, ours_multi, signal.SIGKILL, freeze=(ours_endpoints,))
        ours_endpoints.wait_for("new-leader", "trio-multi", within=5)
        go_multi = start(fleet, "clientgo-v0.27", "go-multi", "endpointsleases", ours_multi)
        time.sleep(HOLD)
        ours_endpoints.send(signal.SIGKILL)
        ours_endpoints.wait_exit()

        # rollout 2: the MultiLock leader dies; client-go on the Lease alone waits out the
        # Lease; client-go on the MultiLock then sees the Endpoints name the dead leader
        # and the Lease a live one: an unknown holder, renewed, never to be taken
        go_lease = start(fleet, "clientgo", "go-lease", "leases", ours_multi)
        handover(fleet, ours_multi, go_lease, signal.SIGKILL, freeze=(go_multi,))
        time.sleep(2 * fleet.timing.lease)
        assert fleet.leader() is go_lease
        ours_lease = start(fleet, "trio", "trio-lease", "leases", go_lease)
        go_multi.send(signal.SIGKILL)
        go_multi.wait_exit()

        handover(fleet, go_lease, ours_lease, signal.SIGKILL)
        finish(fleet, ours_lease)

        check_versions(fleet, fleet.recorder)
        check_versions(fleet, leases, created_with=1)
        assert holders(fleet.recorder) == ["go-endpoints", "trio-multi"]
        assert holders(leases) == ["trio-multi", "go-lease", "trio-lease", ""]
