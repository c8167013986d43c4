"""Kubernetes locks: Lease, Endpoints and ConfigMap objects, and `MultiLock` over two."""

from __future__ import annotations

from ._base import KubeLock as KubeLock
from ._locks import ConfigMapLock as ConfigMapLock
from ._locks import EndpointsLock as EndpointsLock
from ._locks import LeaseLock as LeaseLock
from ._multi import MultiLock as MultiLock
from ._records import LEADER_ANNOTATION as LEADER_ANNOTATION
from ._spec import lock_from_string as lock_from_string

__all__ = [
    "LEADER_ANNOTATION",
    "ConfigMapLock",
    "EndpointsLock",
    "KubeLock",
    "LeaseLock",
    "MultiLock",
    "lock_from_string",
]
