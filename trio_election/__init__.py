"""Leader election on Kubernetes for trio and asyncio programs.

    async with trio_election.elect("leases/default/my-app") as leadership:
        await run_controller()   # cancelled when the lease can no longer be held safely

Here: the election API (`elect`, `open_election`, `Election`, `Leadership`), sharded
leadership (`open_shards`, `Shards`, `MemoryLockGroup`), client-go's
leaderelection names (`LeaderElector`, `ElectionConfig`, `LeaderCallbacks`, `run_or_die`),
the locks, and the `ElectionError` tree. Kubernetes access (the client, its configuration,
the API errors) is `trio_election.kube`; tools for tests are `trio_election.testing`.

The errors (`*`: may come out of `elect()`, `open_election()` and `LeaderElector.run()`;
every other error is retried inside)::

    ElectionError
    ├── ConfigError *            a bad argument or configuration: names the value and the rule
    │   └── kube.KubeConfigError *     a kubeconfig or service account that cannot work
    │       └── kube.TLSVerificationError *   the server's certificate is not trusted
    ├── LeadershipLost *         the term ended because the lease could not be held safely
    ├── LockError                one lock operation failed (retried)
    │   ├── LockConflict         someone else wrote first (HTTP 409); never overwritten
    │   ├── LockNotFound         the lock object does not exist
    │   └── WatchUnavailable     the lock cannot be watched: followers poll instead
    ├── kube.ApiError            the API answered with an error status
    │   ├── kube.ForbiddenError *      a 403 that persists: names the RBAC verb to grant
    │   ├── kube.UnauthorizedError *   a 401 that persists: the credentials were refused
    │   ├── kube.InvalidError *        422: the API refused the object (a bad lock name)
    │   └── ...                        404, 409, 410, 429 and 5xx are retried as LockError;
    │                                  any other status comes out as its ApiError *
    └── kube.ApiConnectionError  no answer from the API (retried)
    Terminated *                 a SystemExit(143) after SIGTERM stopped the election
"""

from __future__ import annotations

from ._clientgo import ElectionConfig as ElectionConfig
from ._clientgo import LeaderCallbacks as LeaderCallbacks
from ._clientgo import LeaderElector as LeaderElector
from ._clientgo import run_or_die as run_or_die
from ._core._clock import ElectionClock as ElectionClock
from ._core._exceptions import ConfigError as ConfigError
from ._core._exceptions import ElectionError as ElectionError
from ._core._exceptions import LeadershipLost as LeadershipLost
from ._core._exceptions import LockConflict as LockConflict
from ._core._exceptions import LockError as LockError
from ._core._exceptions import LockNotFound as LockNotFound
from ._core._exceptions import Terminated as Terminated
from ._core._exceptions import WatchUnavailable as WatchUnavailable
from ._core._fence import Fence as Fence
from ._core._leadership import Leadership as Leadership
from ._core._lock import UNKNOWN_HOLDER as UNKNOWN_HOLDER
from ._core._lock import LeaderRecord as LeaderRecord
from ._core._lock import LockHandle as LockHandle
from ._core._lock import Observation as Observation
from ._core._memory import MemoryLock as MemoryLock
from ._core._metering import Statistics as Statistics
from ._core._timing import Timing as Timing
from ._election import Election as Election
from ._election import elect as elect
from ._election import open_election as open_election
from ._health import HealthCheck as HealthCheck
from ._kube_locks import ConfigMapLock as ConfigMapLock
from ._kube_locks import EndpointsLock as EndpointsLock
from ._kube_locks import KubeLock as KubeLock
from ._kube_locks import LeaseLock as LeaseLock
from ._kube_locks import MultiLock as MultiLock
from ._kube_locks import lock_from_string as lock_from_string
from ._public import name_home
from ._shards._group import Shards as Shards
from ._shards._group import open_shards as open_shards
from ._shards._memory import MemoryLockGroup as MemoryLockGroup
from ._version import __version__ as __version__

__all__ = [
    "UNKNOWN_HOLDER",
    "ConfigError",
    "ConfigMapLock",
    "Election",
    "ElectionClock",
    "ElectionConfig",
    "ElectionError",
    "EndpointsLock",
    "Fence",
    "HealthCheck",
    "KubeLock",
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
    "MemoryLockGroup",
    "MultiLock",
    "Observation",
    "Shards",
    "Statistics",
    "Terminated",
    "Timing",
    "WatchUnavailable",
    "__version__",
    "elect",
    "lock_from_string",
    "open_election",
    "open_shards",
    "run_or_die",
]

name_home(__name__, [globals()[name] for name in __all__])
del name_home
