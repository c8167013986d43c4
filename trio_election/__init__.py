"""Leader election on Kubernetes for trio programs.

async with trio_election.elect("leases/default/my-app") as leadership:
    await run_controller()   # cancelled when the lease can no longer be held safely
"""

from __future__ import annotations

from ._clock import Clock as Clock
from ._clock import ScaledClock as ScaledClock
from ._clock import TrioClock as TrioClock
from ._election import Election as Election
from ._election import elect as elect
from ._election import open_election as open_election
from ._engine import Leadership as Leadership
from ._engine import Statistics as Statistics
from ._exceptions import ConfigError as ConfigError
from ._exceptions import ElectionError as ElectionError
from ._exceptions import LeadershipLost as LeadershipLost
from ._exceptions import LockConflict as LockConflict
from ._exceptions import LockError as LockError
from ._exceptions import LockNotFound as LockNotFound
from ._exceptions import WatchUnavailable as WatchUnavailable
from ._lock import UNKNOWN_HOLDER as UNKNOWN_HOLDER
from ._lock import LeaderRecord as LeaderRecord
from ._lock import LockHandle as LockHandle
from ._lock import Observation as Observation
from ._memory import MemoryLock as MemoryLock
from ._memory import MemoryLockHandle as MemoryLockHandle
from ._seed import ElectionConfig as ElectionConfig
from ._seed import LeaderCallbacks as LeaderCallbacks
from ._seed import LeaderElector as LeaderElector
from ._seed import run_or_die as run_or_die
from ._version import __version__ as __version__

__all__ = [
    "UNKNOWN_HOLDER",
    "Clock",
    "ConfigError",
    "Election",
    "ElectionConfig",
    "ElectionError",
    "LeaderCallbacks",
    "LeaderElector",
    "LeaderRecord",
    "Leadership",
    "LeadershipLost",
    "LockConflict",
    "LockError",
    "LockHandle",
    "LockNotFound",
    "MemoryLock",
    "MemoryLockHandle",
    "Observation",
    "ScaledClock",
    "Statistics",
    "TrioClock",
    "WatchUnavailable",
    "__version__",
    "elect",
    "open_election",
    "run_or_die",
]
