"""Kubernetes Events on the lock object, as client-go's leader election records them.

Reason ``LeaderElection``, messages ``"<identity> became leader"`` and ``"<identity> stopped
leading"``, type ``Normal``, on the Lease (or the Endpoints or ConfigMap) that holds the
record: ``kubectl get events`` and ``kubectl describe lease`` read the same for Go and
Python replicas. Posting is best effort: an Event that cannot be created is logged, never
raised, and a missing ``create events`` right is reported once and then not tried again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, final

from .._core._exceptions import ElectionError
from .._kube._errors import ForbiddenError
from ._base import KubeLock
from ._multi import MultiLock

if TYPE_CHECKING:
    from .._core._lock import LockHandle

__all__ = ["EventRecorder", "event_recorder"]

logger = logging.getLogger("trio_election")

REASON = "LeaderElection"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@final
class EventRecorder:
    """Posts the leader-election Events of one candidate on one lock object."""

    __slots__ = ("_component", "_disabled", "_identity", "_lock")

    def __init__(self, lock: KubeLock, *, component: str, identity: str) -> None:
        self._lock = lock
        self._component = component
        self._identity = identity
        self._disabled = False

    def _event(self, message: str) -> dict[str, Any]:
        lock = self._lock
        uid = lock.uid
        involved: dict[str, Any] = {
            "apiVersion": lock.api_version,
            "kind": lock.kind,
            "namespace": lock.namespace,
            "name": lock.name,
        }
        if uid is not None:
            involved["uid"] = uid
        now = _now()
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{lock.name}.", "namespace": lock.namespace},
            "involvedObject": involved,
            "reason": REASON,
            "message": message,
            "type": "Normal",
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    async def post(self, message: str) -> None:
        """Create one Event; log (never raise) when that fails. May be cancelled."""
        if self._disabled:
            return
        lock = self._lock
        client = lock.client
        if client is None:
            return
        path = f"/api/v1/namespaces/{lock.namespace}/events"
        try:
            await client.request("POST", path, json=self._event(message))
        except ForbiddenError as exc:
            self._disabled = True
            logger.warning(
                "%s: cannot record leader-election Events (%s); no more are tried. Grant "
                "create on events in namespace %s to record them",
                lock.description,
                exc.message,
                lock.namespace,
            )
        except ElectionError as exc:
            logger.info("%s: could not record an Event: %s", lock.description, exc)

    async def became_leader(self) -> None:
        await self.post(f"{self._identity} became leader")

    async def stopped_leading(self) -> None:
        await self.post(f"{self._identity} stopped leading")


def event_recorder(handle: LockHandle, *, component: str, identity: str) -> EventRecorder | None:
    """A recorder for a Kubernetes lock handle (a MultiLock's on its primary); None for a
    lock that is not a Kubernetes object."""
    lock: object = handle
    if isinstance(lock, MultiLock):
        lock = lock.primary
    if isinstance(lock, KubeLock):
        return EventRecorder(lock, component=component, identity=identity)
    return None
