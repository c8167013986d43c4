"""Shared fixtures. `control_plane`: one real etcd + kube-apiserver for the whole test run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from trio_election.testing import ControlPlane, find_binaries, missing_message

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.hookimpl(trylast=True)  # after pytest-trio's trio_mode has marked the async tests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # a test that uses the control plane is a control-plane test, marked or not
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.control_plane)
        # a test for anyio's plugin (both backends) is not pytest-trio's
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
