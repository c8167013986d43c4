"""The three kinds of Kubernetes lock object: Lease, Endpoints and ConfigMap."""

from __future__ import annotations

from typing import Any, ClassVar, final

from .._core._lock import LeaderRecord
from ._base import KubeLock, deep_copy
from ._records import (
    LEADER_ANNOTATION,
    annotation_from_record,
    canonical_json,
    lease_spec_from_record,
    record_from_annotation,
    record_from_lease_spec,
)

__all__ = ["ConfigMapLock", "EndpointsLock", "LeaseLock"]


def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


@final
class LeaseLock(KubeLock):
    """A ``coordination.k8s.io/v1`` Lease: the record is the Lease's `spec` (the default).

    Only the five record fields of the spec are written (``strategy`` and
    ``preferredHolder`` are kept). Times are MicroTime with six fractional digits.
    """

    resource: ClassVar[str] = "leases"
    api_version: ClassVar[str] = "coordination.k8s.io/v1"
    kind: ClassVar[str] = "Lease"
    _api_root: ClassVar[str] = "/apis/coordination.k8s.io/v1"

    __slots__ = ()

    def _read(self, obj: dict[str, Any]) -> tuple[LeaderRecord | None, str]:
        spec = obj.get("spec")
        return record_from_lease_spec(spec), "" if spec is None else canonical_json(spec)

    def _patch(self, record: LeaderRecord) -> dict[str, Any]:
        return {"spec": lease_spec_from_record(record)}

    def _replace(self, obj: dict[str, Any], record: LeaderRecord) -> dict[str, Any]:
        new = deep_copy(obj)
        spec = _dict(new.get("spec")) or {}
        for key, value in lease_spec_from_record(record).items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        new["spec"] = spec
        return new

    def _new(self, record: LeaderRecord) -> dict[str, Any]:
        spec = {k: v for k, v in lease_spec_from_record(record).items() if v is not None}
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }


class _AnnotationLock(KubeLock):
    """A lock whose record is the annotation ``control-plane.alpha.kubernetes.io/leader``."""

    __slots__ = ()

    def _read(self, obj: dict[str, Any]) -> tuple[LeaderRecord | None, str]:
        metadata = _dict(obj.get("metadata")) or {}
        annotations = _dict(metadata.get("annotations")) or {}
        value = annotations.get(LEADER_ANNOTATION)
        if value is None:
            return LeaderRecord(), ""
        raw = value if isinstance(value, str) else canonical_json(value)
        return record_from_annotation(value), raw

    def _patch(self, record: LeaderRecord) -> dict[str, Any]:
        return {"metadata": {"annotations": {LEADER_ANNOTATION: annotation_from_record(record)}}}

    def _replace(self, obj: dict[str, Any], record: LeaderRecord) -> dict[str, Any]:
        new = deep_copy(obj)
        metadata = _dict(new.get("metadata")) or {}
        annotations = _dict(metadata.get("annotations")) or {}
        annotations[LEADER_ANNOTATION] = annotation_from_record(record)
        metadata["annotations"] = annotations
        new["metadata"] = metadata
        return new

    def _new(self, record: LeaderRecord) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": {LEADER_ANNOTATION: annotation_from_record(record)},
            },
        }


@final
class EndpointsLock(_AnnotationLock):
    """A v1 Endpoints object holding the record in its leader annotation.

    For fleets that share a lock with old client-go (``endpoints``, up to 1.23) or for
    `MultiLock` migrations. Every write wakes every Endpoints watcher of the cluster, and
    since Kubernetes 1.33 the API is deprecated (the server's Warning is logged once):
    prefer `LeaseLock`.
    """

    resource: ClassVar[str] = "endpoints"
    api_version: ClassVar[str] = "v1"
    kind: ClassVar[str] = "Endpoints"
    _api_root: ClassVar[str] = "/api/v1"

    __slots__ = ()


@final
class ConfigMapLock(_AnnotationLock):
    """A v1 ConfigMap holding the record in its leader annotation (client-go's ``configmaps``).

    Its data, labels and other annotations are never touched.
    """

    resource: ClassVar[str] = "configmaps"
    api_version: ClassVar[str] = "v1"
    kind: ClassVar[str] = "ConfigMap"
    _api_root: ClassVar[str] = "/api/v1"

    __slots__ = ()
