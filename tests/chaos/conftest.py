"""Fixtures and switches of the fault-injection tests (tests/chaos).

- `toxiproxy`: one Toxiproxy server for the session (built by
  scripts/build_control_plane.py); skips without it, fails under CI=true.
- Tests marked `chaos` run only when `-m` names the marker (`nox -s chaos` passes
  `-m "chaos or not chaos"` here) or `TRIO_ELECTION_CHAOS=1` (tests/conftest.py); the
  others are the short subset of every test run.
- `TRIO_ELECTION_CHAOS_RUNS=N` runs every test that takes `chaos_run` N times.
- The session ends with a table of every scenario run: fault, runs, overlaps, recovery.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from harness.toxiproxy import Toxiproxy

from trio_election._controlplane._binaries import find_toxiproxy

from ._report import RESULTS, summary

if TYPE_CHECKING:
    from collections.abc import Iterator

RUNS = "TRIO_ELECTION_CHAOS_RUNS"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_run" in metafunc.fixturenames:
        text = os.environ.get(RUNS, "1")
        try:
            runs = int(text)
        except ValueError:
            raise pytest.UsageError(f"{RUNS}={text!r}: give a whole number of runs") from None
        if runs < 1:
            raise pytest.UsageError(f"{RUNS}={text!r}: give at least 1 run")
        metafunc.parametrize("chaos_run", range(1, runs + 1), ids=lambda n: f"run{n}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("chaos summary")
        terminalreporter.write_line(summary(RESULTS))


@pytest.fixture(scope="session")
def toxiproxy() -> Iterator[Toxiproxy]:
    if find_toxiproxy() is None:
        message = (
            "Toxiproxy's server is missing: run `python scripts/build_control_plane.py` (needs Go)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    with Toxiproxy.start() as server:
        yield server
