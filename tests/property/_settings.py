"""Hypothesis profiles, and how many schedules each property runs.

`TRIO_ELECTION_HYPOTHESIS_PROFILE` picks the profile:

- ``default``: random schedules, a failing one is kept in a database in the temporary
  folder (never in the repository) and tried first next time;
- ``ci`` (the default under ``CI=true``): the same schedules on every run (derandomized),
  no database;
- ``chaos`` (`nox -s chaos`): 32 times as many schedules (over 50,000 in all, bigger
  ones: up to five candidates and 14 faults), random.

Every profile prints the blob of a failing example (``@reproduce_failure``) and the
schedule itself (`Schedule.__repr__` is valid Python).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

__all__ = ["PROFILE", "budget"]

PROFILE_ENV: Final = "TRIO_ELECTION_HYPOTHESIS_PROFILE"
SCALE: Final = {"default": 1, "ci": 1, "chaos": 32}

_common = settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "default",
    _common,
    database=DirectoryBasedExampleDatabase(
        Path(tempfile.gettempdir()) / "trio-election-hypothesis"
    ),
)
settings.register_profile("ci", _common, derandomize=True, database=None)
settings.register_profile("chaos", _common, database=None)

PROFILE: Final = os.environ.get(PROFILE_ENV) or (
    "ci" if os.environ.get("CI") == "true" else "default"
)
if PROFILE not in SCALE:
    raise ValueError(f"{PROFILE_ENV}={PROFILE!r}: use one of {', '.join(SCALE)}")
settings.load_profile(PROFILE)


def budget(examples: int) -> int:
    """How many schedules a property runs under the current profile."""
    return examples * SCALE[PROFILE]
