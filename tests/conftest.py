"""Shared fixtures. `control_plane`: one real etcd + kube-apiserver for the whole test run.
Tests marked `chaos` run only when `-m` names the marker or `TRIO_ELECTION_CHAOS=1`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from trio_election.testing import ControlPlane, find_binaries, missing_message

if TYPE_CHECKING:
    from collections.abc import Iterator


def _chaos_selected(config: pytest.Config) -> bool:
    markexpr: str = config.getoption("markexpr", "") or ""
    return "chaos" in markexpr or os.environ.get("TRIO_ELECTION_CHAOS") == "1"


@pytest.hookimpl(trylast=True)  # after pytest-trio's
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the long scenarios (marked `chaos`, wherever they are) are left out of a normal run,
    # reported as deselected, not skipped: `nox -s chaos` runs them
    if not _chaos_selected(config):
        long = [i for i in items if i.get_closest_marker("chaos")]
        if long:
            config.hook.pytest_deselected(items=long)
            items[:] = [i for i in items if i.get_closest_marker("chaos") is None]
    for item in items:
        # a test that uses the control plane is a control-plane test, marked or not
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.control_plane)
        # trio_mode marks every async test for pytest-trio, which would then run it under
        # trio whatever its backend: a test marked `anyio` is anyio's plugin's to run, on
        # the backend of its `anyio_backend` parameter
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """Started on first use, stopped at the end of the run. Skips when the binaries are
    missing; under CI=true that (and a control plane that does not start) fails instead."""
    if find_binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {missing_message()}", pytrace=False)
        pytest.skip(missing_message())
    with ControlPlane.start() as plane:
        yield plane
