"""Leader election on Kubernetes for trio programs.

async with trio_election.elect("leases/default/my-app") as leadership:
    await run_controller()   # cancelled when the lease can no longer be held safely
"""

from __future__ import annotations

from ._clientgo import ElectionConfig as ElectionConfig
from ._clientgo import LeaderCallbacks as LeaderCallbacks
from ._clientgo import LeaderElector as LeaderElector
from ._clientgo import run_or_die as run_or_die
from ._core._clock import Clock as Clock
from ._core._clock import ScaledClock as ScaledClock
from ._core._clock import TrioClock as TrioClock
from ._core._exceptions import ConfigError as ConfigError
from ._core._exceptions import ElectionError as ElectionError
from ._core._exceptions import LeadershipLost as LeadershipLost
from ._core._exceptions import LockConflict as LockConflict
from ._core._exceptions import LockError as LockError
from ._core._exceptions import LockNotFound as LockNotFound
from ._core._exceptions import Terminated as Terminated
from ._core._exceptions import WatchUnavailable as WatchUnavailable
from ._core._leadership import Leadership as Leadership
from ._core._lock import UNKNOWN_HOLDER as UNKNOWN_HOLDER
from ._core._lock import LeaderRecord as LeaderRecord
from ._core._lock import LockHandle as LockHandle
from ._core._lock import Observation as Observation
from ._core._memory import MemoryLock as MemoryLock
from ._core._memory import MemoryLockHandle as MemoryLockHandle
from ._core._metering import Statistics as Statistics
from ._election import Election as Election
from ._election import elect as elect
from ._election import open_election as open_election
from ._health import HealthCheck as HealthCheck
from ._kube import AlreadyExistsError as AlreadyExistsError
from ._kube import ApiConnectionError as ApiConnectionError
from ._kube import ApiError as ApiError
from ._kube import ConflictError as ConflictError
from ._kube import ExecConfig as ExecConfig
from ._kube import ForbiddenError as ForbiddenError
from ._kube import GoneError as GoneError
from ._kube import InvalidError as InvalidError
from ._kube import KubeClient as KubeClient
from ._kube import KubeConfig as KubeConfig
from ._kube import KubeConfigError as KubeConfigError
from ._kube import NotFoundError as NotFoundError
from ._kube import ServerError as ServerError
from ._kube import TLSVerificationError as TLSVerificationError
from ._kube import TooManyRequestsError as TooManyRequestsError
from ._kube import UnauthorizedError as UnauthorizedError
from ._kube_locks import LEADER_ANNOTATION as LEADER_ANNOTATION
from ._kube_locks import ConfigMapLock as ConfigMapLock
from ._kube_locks import EndpointsLock as EndpointsLock
from ._kube_locks import LeaseLock as LeaseLock
from ._kube_locks import MultiLock as MultiLock
from ._kube_locks import lock_from_string as lock_from_string
from ._version import __version__ as __version__

__all__ = [
    "LEADER_ANNOTATION",
    "UNKNOWN_HOLDER",
    "AlreadyExistsError",
    "ApiConnectionError",
    "ApiError",
    "Clock",
    "ConfigError",
    "ConfigMapLock",
    "ConflictError",
    "Election",
    "ElectionConfig",
    "ElectionError",
    "EndpointsLock",
    "ExecConfig",
    "ForbiddenError",
    "GoneError",
    "HealthCheck",
    "InvalidError",
    "KubeClient",
    "KubeConfig",
    "KubeConfigError",
    "LeaderCallbacks",
    "LeaderElector",
    "LeaderRecord",
    "Leadership",
    "LeadershipLost",
    "LeaseLock",
    "LockConflict",
    "LockError",
    "LockHandle",
    "LockNotFound",
    "MemoryLock",
    "MemoryLockHandle",
    "MultiLock",
    "NotFoundError",
    "Observation",
    "ScaledClock",
    "ServerError",
    "Statistics",
    "TLSVerificationError",
    "Terminated",
    "TooManyRequestsError",
    "TrioClock",
    "UnauthorizedError",
    "WatchUnavailable",
    "__version__",
    "elect",
    "lock_from_string",
    "open_election",
    "run_or_die",
]
