"""Network faults and crashes on a real control plane, judged on one monotonic clock.

See _scenarios.py for the scenes, the faults and the judgement. The short subset (`ci`)
runs in every test run; the rest is marked `chaos` (`nox -s chaos`, repeated
`TRIO_ELECTION_CHAOS_RUNS` times, with a summary table at the end).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from interop._fleet import Fleet

from ._scenarios import FAULTS, Fault, run

if TYPE_CHECKING:
    from pathlib import Path

    from harness.toxiproxy import Toxiproxy

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(fault, id=fault.id, marks=() if fault.ci else pytest.mark.chaos)
        for fault in FAULTS
    ],
)
def test_fault(
    fault: Fault,
    chaos_run: int,
    control_plane: ControlPlane,
    toxiproxy: Toxiproxy,
    tmp_path: Path,
) -> None:
    with Fleet(control_plane, tmp_path, name="chaos") as fleet:
        run(fleet, toxiproxy, control_plane, fault)
