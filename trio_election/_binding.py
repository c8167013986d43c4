"""What the election faces make of their `lock`, `client` and `events` arguments.

A `MemoryLock` gives a handle of its own; a string ``"<resource>/<namespace>/<name>"`` or a
Kubernetes lock object is bound to the `client` given (a Kubernetes lock may carry one
already), or else to a client opened from `KubeConfig.load()` for as long as the election
lasts; any other `LockHandle` is used as it is. `events` turns into the recorder of
client-go's Kubernetes Events on the lock object.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._core._exceptions import ConfigError
from ._core._lock import LockHandle
from ._core._memory import MemoryLock
from ._kube import KubeClient, KubeConfig
from ._kube._errors import NoConfigFound
from ._kube_locks import lock_from_string
from ._kube_locks._events import EventRecorder, event_recorder
from ._kube_locks._spec import check_lock_string

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

__all__ = [
    "EventRecorder",
    "LockSpec",
    "check_client",
    "load_config",
    "open_lock_handle",
    "recorder_for",
]


@runtime_checkable
class _NeedsClient(Protocol):
    """A Kubernetes lock: a handle that is bound to a client per candidate."""

    @property
    def client(self) -> KubeClient | None: ...

    def with_client(self, client: KubeClient) -> LockHandle: ...


LockSpec = str | LockHandle | MemoryLock
"""What `elect()`, `open_election()` and `ElectionConfig` accept as `lock`."""


@asynccontextmanager
async def open_lock_handle(lock: object, client: KubeClient | None) -> AsyncGenerator[LockHandle]:
    """One candidate's handle for `lock`, opening a Kubernetes client if one is needed.

    Raises `ConfigError` for anything that is not a lock; `KubeConfigError` when a client
    has to be opened and no configuration is found. The client opened here is closed on exit.
    """
    if isinstance(lock, MemoryLock):
        yield lock.handle()
        return
    if isinstance(lock, (str, _NeedsClient)):
        if isinstance(lock, str):
            check_lock_string(lock)  # what can be checked without a cluster, first
        given = client if client is not None or isinstance(lock, str) else lock.client
        if given is not None:
            yield _bind(lock, given)
            return
        async with KubeClient(load_config()) as own:
            yield _bind(lock, own)
        return
    if isinstance(lock, LockHandle):
        yield lock
        return
    raise ConfigError(
        f"lock must be a string like 'leases/<namespace>/<name>', a lock object "
        f"(LeaseLock, EndpointsLock, ConfigMapLock, MultiLock, MemoryLock), or a lock "
        f"handle; got {lock!r}"
    )


def check_client(client: object) -> None:
    """Raise `TypeError` unless `client` is None or a `KubeClient`."""
    if client is not None and not isinstance(client, KubeClient):
        raise TypeError(
            f"client must be a trio_election.kube.KubeClient, e.g. "
            f"KubeClient(KubeConfig.load()), or None to open one from the usual "
            f"configuration; got {client!r}"
        )


def load_config() -> KubeConfig:
    """`KubeConfig.load()`, its "nothing found" hint in the election's terms."""
    try:
        return KubeConfig.load()
    except NoConfigFound as exc:
        raise NoConfigFound(
            exc.where,
            "set KUBECONFIG=PATH, or pass client=KubeClient(KubeConfig.load(PATH)) "
            "(both from trio_election.kube)",
        ) from None


def _bind(lock: str | _NeedsClient, client: KubeClient) -> LockHandle:
    if isinstance(lock, str):
        return lock_from_string(lock, client)
    return lock.with_client(client)


def recorder_for(handle: LockHandle, events: str | None, identity: str) -> EventRecorder | None:
    """The recorder of `identity`'s Events under the component name `events` (None: none).

    Only a Kubernetes lock object gets one; on any other handle `events` is ignored."""
    if events is None:
        return None
    return event_recorder(handle, component=events, identity=identity)
