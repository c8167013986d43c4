"""The fake API's objects: kinds, paths, ``Status`` bodies, merge patches, validation.

Pure functions over decoded JSON, shaped like the apiserver's answers where a client can
tell the difference.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpx

if TYPE_CHECKING:
    from ._requests import FakeRequest

__all__ = [
    "ALL_VERBS",
    "DEPRECATED_ENDPOINTS",
    "ELECTION_VERBS",
    "KINDS",
    "MERGE_PATCH",
    "PATH",
    "Kind",
    "Reject",
    "decode",
    "details",
    "merge",
    "meta",
    "status",
    "status_response",
    "validate",
]

ALL_VERBS: Final = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
"""Every verb the fake knows."""

ELECTION_VERBS: Final = frozenset({"get", "create", "update"})
"""What Helm charts usually grant for leader election (no patch, no watch)."""

DEPRECATED_ENDPOINTS: Final = (
    '299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"'
)
"""The Warning header the apiserver (1.33+) adds to every Endpoints response."""

MERGE_PATCH: Final = "application/merge-patch+json"
_MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True, slots=True)
class Kind:
    resource: str
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


KINDS: Final = {
    "leases": Kind("leases", "coordination.k8s.io", "v1", "Lease"),
    "endpoints": Kind("endpoints", "", "v1", "Endpoints"),
    "configmaps": Kind("configmaps", "", "v1", "ConfigMap"),
}
PATH: Final = re.compile(
    r"/(?:api/v1|apis/coordination\.k8s\.io/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?/?"
)


class Reject(Exception):
    """An error answer, raised while serving and turned into the response."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.response = status_response(code, reason, message, details)


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` body as the apiserver sends it with an error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def status_response(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.Response(code, json=status(code, reason, message, details))


def details(kind: Kind, name: str) -> dict[str, Any]:
    """The ``details`` of a ``Status`` about one object."""
    found: dict[str, Any] = {"name": name}
    if kind.group:
        found["group"] = kind.group
    found["kind"] = kind.resource
    return found


def merge(target: object, patch: object) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = (
        dict(target) if isinstance(target, dict) else {}  # pyright: ignore[reportUnknownArgumentType]
    )
    for key, value in patch.items():  # pyright: ignore[reportUnknownVariableType]
        if value is None:
            result.pop(key, None)  # pyright: ignore[reportUnknownArgumentType]
        else:
            result[key] = merge(result.get(key), value)  # pyright: ignore[reportUnknownArgumentType]
    return result


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's ``metadata`` (added when missing)."""
    found = obj.get("metadata")
    if not isinstance(found, dict):
        found = {}
        obj["metadata"] = found
    return found  # pyright: ignore[reportUnknownVariableType]


def decode(kind: Kind, record: FakeRequest, body: object) -> dict[str, Any]:
    """The object a create, update or patch sends, checked as the apiserver decodes it."""
    if not isinstance(body, dict):
        raise Reject(400, "BadRequest", f"the body of the {record.verb} is not a JSON object")
    obj: dict[str, Any] = copy.deepcopy(body)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    if (
        obj.get("kind", kind.kind) != kind.kind
        or obj.get("apiVersion", kind.api_version) != kind.api_version
    ):
        raise Reject(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) does not match the "
            f"expected API version ({kind.api_version})",
        )
    metadata = meta(obj)
    if metadata.get("namespace", record.namespace) != record.namespace:
        raise Reject(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    if record.name and metadata.get("name", record.name) != record.name:
        raise Reject(
            400,
            "BadRequest",
            f"the name of the object ({metadata.get('name')}) does not match the name on the "
            f"URL ({record.name})",
        )
    annotations = metadata.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())  # pyright: ignore[reportUnknownVariableType]
    ):
        raise Reject(
            400,
            "BadRequest",
            f"{kind.kind} in version {kind.version!r} cannot be handled as a {kind.kind}: "
            f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.annotations "
            f"of type string",
        )
    return obj


def _undecodable(kind: Kind, why: str) -> Reject:
    return Reject(
        400,
        "BadRequest",
        f"{kind.kind} in version {kind.version!r} cannot be handled as a {kind.kind}: {why}",
    )


def validate(kind: Kind, obj: dict[str, Any], name: str) -> None:
    """Refuse a Lease the apiserver would refuse (types, MicroTime, positive duration)."""
    if kind.resource != "leases":
        return
    spec = obj.get("spec")
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise _undecodable(kind, "spec is not an object")
    fields: dict[str, Any] = spec  # pyright: ignore[reportUnknownVariableType]
    for key in ("acquireTime", "renewTime"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or not _MICRO_TIME.fullmatch(value)):
            raise _undecodable(
                kind,
                f'parsing time "{value}" as "2006-01-02T15:04:05.000000Z07:00": '
                f"cannot parse as MicroTime",
            )
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        value = fields.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _undecodable(kind, f"json: cannot unmarshal into LeaseSpec.{key} of type int32")
    holder = fields.get("holderIdentity")
    if holder is not None and not isinstance(holder, str):
        raise _undecodable(
            kind, "json: cannot unmarshal into LeaseSpec.holderIdentity of type string"
        )
    duration = fields.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        raise Reject(
            422,
            "Invalid",
            f'{kind.kind}.{kind.group} "{name}" is invalid: spec.leaseDurationSeconds: '
            f"Invalid value: {duration}: must be greater than 0",
            {**details(kind, name), "kind": kind.kind},
        )
    transitions = fields.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        raise Reject(
            422,
            "Invalid",
            f'{kind.kind}.{kind.group} "{name}" is invalid: spec.leaseTransitions: '
            f"Invalid value: {transitions}: must be greater than or equal to 0",
            {**details(kind, name), "kind": kind.kind},
        )
