"""A shard group on Kubernetes: shard Leases and membership Leases in one namespace.

- Shard ``i`` of the group ``leases/<namespace>/<name>`` is the Lease ``<name>-shard-<i>``,
  a `LeaseLock` carrying client-go's record (``kubectl get leases`` shows its holder).
- Each member's record is a Lease ``<name>-member-<digest of its identity>`` labelled
  ``trio-election.io/shard-group: <name>`` (`GROUP_LABEL`), with the annotation
  ``trio-election.io/shards: <S>``; its spec holds the identity (``holderIdentity``),
  ``leaseDurationSeconds`` and ``renewTime``, rewritten every `retry_period`.
- The records are listed with a label selector on the group and followed on the
  namespace's shared watch of Leases (the shard Leases' watch; a watch by label of their
  own where that cannot be shared): ``list`` and ``watch`` on Leases are needed. Without
  them `open_shards()` raises the apiserver's 403 as `ForbiddenError`, whose message names
  the verb and the rule to grant, once the refusals have lasted the lock layer's grace
  window (`FORBIDDEN_GRACE_SECONDS`, 15 s): an apiserver that has just restarted refuses
  for a moment.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

from .._core._exceptions import LockError
from .._kube._errors import (
    ApiConnectionError,
    ApiError,
    ForbiddenError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from .._kube._json import as_list, as_mapping
from .._kube_locks._forbidden import Permissions
from .._kube_locks._labelled import labelled_objects
from .._kube_locks._locks import LeaseLock
from .._kube_locks._records import format_micro_time, parse_time
from ._members import MemberEntry, MemberRecord

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable, Mapping

    from .._kube import KubeClient

__all__ = [
    "GROUP_LABEL",
    "SHARDS_ANNOTATION",
    "KubeMemberStore",
    "member_entry",
    "member_lease",
    "shard_locks",
]

GROUP_LABEL = "trio-election.io/shard-group"
"""The label of a group's membership Leases; its value is the group's name."""

SHARDS_ANNOTATION = "trio-election.io/shards"
"""The annotation of a membership Lease that gives its member's shard count."""

_WATCH_TIMEOUT_SECONDS = 300


def shard_locks(namespace: str, name: str, shards: int, client: KubeClient) -> list[LeaseLock]:
    """The Lease lock of each shard: ``<name>-shard-<i>``."""
    return [LeaseLock(namespace, f"{name}-shard-{i}", client) for i in range(shards)]


def member_lease(name: str, identity: str) -> str:
    """The name of `identity`'s membership Lease in group `name` (identities need not be
    valid object names, so a digest of it)."""
    return f"{name}-member-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def member_entry(obj: Mapping[str, Any]) -> MemberEntry | None:
    """The membership record in the Lease `obj` (its `record` None when unreadable), or None
    when `obj` has no name."""
    meta = as_mapping(obj.get("metadata")) or {}
    name = meta.get("name")
    if not isinstance(name, str):
        return None
    spec = as_mapping(obj.get("spec")) or {}
    annotations = as_mapping(meta.get("annotations")) or {}
    raw = json.dumps({"spec": spec, "shards": annotations.get(SHARDS_ANNOTATION)}, sort_keys=True)
    identity = spec.get("holderIdentity")
    duration = spec.get("leaseDurationSeconds", 0)
    shards_text = annotations.get(SHARDS_ANNOTATION)
    record = None
    if (
        isinstance(identity, str)
        and identity
        and isinstance(duration, int)
        and isinstance(shards_text, str)
        and shards_text.isdigit()
    ):
        record = MemberRecord(
            identity, int(shards_text), duration, parse_time(spec.get("renewTime"))
        )
    return MemberEntry(name, record, raw)


def _entries(objects: Iterable[Mapping[str, Any]]) -> dict[str, MemberEntry]:
    found = (member_entry(obj) for obj in objects)
    return {entry.name: entry for entry in found if entry is not None}


@final
class KubeMemberStore:
    """The membership Leases of one group, through one client (a `MemberStore`)."""

    __slots__ = ("_client", "_group", "_namespace", "_path", "_permissions")

    def __init__(self, namespace: str, group: str, client: KubeClient) -> None:
        self._namespace = namespace
        self._group = group
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._permissions = Permissions(self.description)

    @property
    def description(self) -> str:
        return f"leases/{self._namespace}/{self._group}"

    def _selector(self) -> dict[str, str]:
        return {"labelSelector": f"{GROUP_LABEL}={self._group}"}

    async def _listing(self) -> tuple[dict[str, MemberEntry], str]:
        listing = await self._client.request("GET", self._path, params=self._selector())
        items = (as_mapping(item) for item in as_list(listing.get("items")) or [])
        entries = _entries(obj for obj in items if obj is not None)
        meta = as_mapping(listing.get("metadata")) or {}
        version = meta.get("resourceVersion")
        return entries, version if isinstance(version, str) else ""

    async def list(self) -> Mapping[str, MemberEntry]:
        with _retried(self.description, self._permissions, "list", "list the members"):
            entries, _ = await self._listing()
        return entries

    async def watch(self) -> AsyncGenerator[Mapping[str, MemberEntry]]:
        """The members as of now, then after each change: read from the namespace's shared
        watch of Leases (the shard Leases' too) when it can be shared, else from a watch of
        the group's label of its own."""
        with _retried(self.description, self._permissions, "watch", "watch the members"):
            async with labelled_objects(
                self._client, self._path, GROUP_LABEL, self._group
            ) as snapshots:
                if snapshots is not None:
                    async with aclosing(snapshots) as stream:
                        async for objects in stream:
                            yield _entries(objects.values())
                    return
            entries, version = await self._listing()
            yield dict(entries)
            params = {
                **self._selector(),
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(_WATCH_TIMEOUT_SECONDS),
            }
            async with aclosing(self._client.watch(self._path, params=params)) as events:
                async for event in events:
                    if event.type == "BOOKMARK":
                        continue
                    if event.type == "DELETED":
                        entries.pop(event.name, None)
                    else:
                        entry = member_entry(event.object)
                        if entry is None:
                            continue
                        entries[entry.name] = entry
                    yield dict(entries)

    def _object(self, record: MemberRecord) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": record.identity,
            "leaseDurationSeconds": record.lease_duration_seconds,
        }
        if record.renew_time is not None:
            spec["renewTime"] = format_micro_time(record.renew_time)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": member_lease(self._group, record.identity),
                "namespace": self._namespace,
                "labels": {GROUP_LABEL: self._group},
                "annotations": {SHARDS_ANNOTATION: str(record.shards)},
            },
            "spec": spec,
        }

    async def put(self, record: MemberRecord) -> None:
        body = self._object(record)
        name = body["metadata"]["name"]
        with _retried(self.description, self._permissions, "patch", "renew the membership"):
            try:  # a merge patch needs no version: only this member writes its record
                await self._client.request(
                    "PATCH",
                    f"{self._path}/{name}",
                    json=body,
                    content_type="application/merge-patch+json",
                )
            except NotFoundError:
                await self._client.request("POST", self._path, json=body)

    async def delete(self, identity: str) -> None:
        name = member_lease(self._group, identity)
        with _retried(self.description, self._permissions, "delete", "delete the membership"):
            try:
                await self._client.request("DELETE", f"{self._path}/{name}")
            except NotFoundError:
                return


class _retried:
    """Turn what a retry may cure into `LockError`: failures of the connection or the
    server, and refusals (403, 401) until they have persisted for the grace window of the
    lock layer (an apiserver that has just restarted refuses for a moment); a refusal that
    has persisted comes out as is, its message naming the RBAC rule to grant."""

    __slots__ = ("_description", "_permissions", "_verb", "_what")

    def __init__(self, description: str, permissions: Permissions, verb: str, what: str) -> None:
        self._description = description
        self._permissions = permissions
        self._verb = verb
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self._permissions.worked(self._verb)
            return
        if isinstance(exc, ForbiddenError | UnauthorizedError):
            transient = self._permissions.judge(self._verb, exc)
            if transient is not None:
                raise transient from exc
            return
        if isinstance(exc, ApiConnectionError | ApiError):
            if not isinstance(exc, ServerError | TooManyRequestsError):
                self._permissions.worked(self._verb)  # an answer past RBAC
            raise LockError(f"{self._description}: cannot {self._what}: {exc}") from exc
