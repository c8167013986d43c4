"""Head-to-head benchmarks: this library, client-go and the `kubernetes` Python client on one
real control plane. Run with `nox -s bench` (or `python -m benchmarks --help`)."""

from __future__ import annotations

import sys
from pathlib import Path

# the processes and event lines of tests/harness, shared with the interop tests
_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
