"""`KubeLock`: one lock object in the Kubernetes API, read and written with preconditions.

What every Kubernetes lock does the same way, whatever holds the record (a Lease's spec or
an annotation):

- **get**: ``GET`` the object; 404 reads as missing.
- **create**: ``POST`` the object; 409 (it already exists) is `LockConflict`.
- **update**: a JSON merge ``PATCH`` (``application/merge-patch+json``) of the record only,
  carrying ``metadata.resourceVersion``: the apiserver refuses it with 409 if the object
  changed, and everything else on the object (labels, other annotations, other fields) is
  kept. One request, no read first. When RBAC allows ``update`` but not ``patch`` (403 on
  the patch), the handle notes it once and from then on ``PUT``\\ s the whole object as last
  seen, with its ``resourceVersion``; if it has not seen that version it reads it first.
- **watch**: a Kubernetes watch of the collection with a field selector on the name,
  resumed from the last ``resourceVersion`` (bookmarks included); 410 Gone re-reads.

Errors, as the engine expects them: 409 is `LockConflict`, 404 on update is
`LockNotFound`, transport failures, 5xx, 429 and 410 are `LockError` (retried); a 403 on
the watch or 405 is `WatchUnavailable` (the engine polls); everything else (403 on a read or
a write, 401, 422, a missing namespace) comes out unchanged: it is an `ElectionError` that
retrying cannot cure.
"""

from __future__ import annotations

import copy
import logging
import re
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .._exceptions import ConfigError, LockConflict, LockError, LockNotFound, WatchUnavailable
from .._kube._errors import (
    ApiConnectionError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
)
from .._lock import MISSING, LeaderRecord, Observation

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator

    from .._kube import KubeClient

__all__ = ["WATCH_TIMEOUT_SECONDS", "KubeLock", "check_name", "check_namespace"]

logger = logging.getLogger("trio_election")

MERGE_PATCH = "application/merge-patch+json"

WATCH_TIMEOUT_SECONDS = 300
"""How long the apiserver keeps one watch request open (its ``timeoutSeconds``)."""

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_name(name: object) -> str:
    """A valid object name (a DNS-1123 subdomain), or `ConfigError`."""
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise ConfigError(
            f"invalid lock name {name!r}: it must be a DNS subdomain (at most 253 characters: "
            f"lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    return name


def check_namespace(namespace: object) -> str:
    """A valid namespace name (a DNS-1123 label), or `ConfigError`."""
    if not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.fullmatch(namespace):
        raise ConfigError(
            f"invalid namespace {namespace!r}: it must be a DNS label (at most 63 characters: "
            f"lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    return namespace


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}  # pyright: ignore[reportUnknownVariableType]


def version_of(obj: dict[str, Any]) -> str:
    """The object's ``metadata.resourceVersion`` ("" when absent)."""
    version = _metadata(obj).get("resourceVersion")
    return version if isinstance(version, str) else ""


class KubeLock:
    """A lock held in one Kubernetes object, ``<resource>/<namespace>/<name>``.

    A lock object is also one candidate's handle (`LockHandle`): it remembers the object as
    last seen and whether the server allows ``patch``. `with_client()` gives a fresh handle
    with its own memory; `elect()` makes one per candidate. Subclasses say where the
    record lives in the object.
    """

    resource: ClassVar[str]
    """The plural resource name, e.g. ``leases``."""
    api_version: ClassVar[str]
    kind: ClassVar[str]
    _api_root: ClassVar[str]

    __slots__ = ("_cached", "_client", "_name", "_namespace", "_put_only", "_resume")

    def __init__(self, namespace: str, name: str, client: KubeClient | None = None) -> None:
        self._namespace = check_namespace(namespace)
        self._name = check_name(name)
        self._client = client
        self._cached: dict[str, Any] | None = None
        self._put_only = False
        self._resume: tuple[bool, str, str] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._namespace!r}, {self._name!r})"

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> KubeClient | None:
        """The client this handle talks through (None until bound with `with_client()`)."""
        return self._client

    @property
    def description(self) -> str:
        """``<resource>/<namespace>/<name>``, e.g. ``leases/default/my-app``."""
        return f"{self.resource}/{self._namespace}/{self._name}"

    def with_client(self, client: KubeClient) -> Self:
        """A fresh handle on the same object through `client` (nothing remembered)."""
        return type(self)(self._namespace, self._name, client)

    # ------------------------------------------------------------ where the record lives
    def _read(self, obj: dict[str, Any]) -> tuple[LeaderRecord | None, str]:
        """The record in `obj` and its raw text (as stored)."""
        raise NotImplementedError

    def _patch(self, record: LeaderRecord) -> dict[str, Any]:
        """A merge patch that writes `record` and touches nothing else."""
        raise NotImplementedError

    def _replace(self, obj: dict[str, Any], record: LeaderRecord) -> dict[str, Any]:
        """A copy of `obj` holding `record`, everything else kept (for a PUT)."""
        raise NotImplementedError

    def _new(self, record: LeaderRecord) -> dict[str, Any]:
        """A new object holding `record` (for a POST)."""
        raise NotImplementedError

    # ------------------------------------------------------------ paths and plumbing
    @property
    def _collection_path(self) -> str:
        return f"{self._api_root}/namespaces/{self._namespace}/{self.resource}"

    @property
    def _object_path(self) -> str:
        return f"{self._collection_path}/{self._name}"

    def _need_client(self) -> KubeClient:
        if self._client is None:
            raise ConfigError(
                f"{self.description} has no Kubernetes client: pass client= when creating "
                f"it, or give the lock to elect()/open_election(), which bind one"
            )
        return self._client

    def _observe(self, obj: dict[str, Any]) -> Observation:
        """Remember `obj` as the object last seen (unless a newer one is known) and read it."""
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        if not _older(obj, self._cached):
            self._cached = obj
        record, raw = self._read(obj)
        return Observation(exists=True, record=record, version=version_of(obj), raw=raw)

    def _forget(self) -> Observation:
        self._cached = None
        return MISSING

    @contextmanager
    def _translated(self, action: str) -> Generator[None]:
        """Turn the access layer's errors into what the engine expects of a lock."""
        try:
            yield
        except ConflictError as exc:
            raise LockConflict(f"{self.description}: {action}: {exc.message}") from exc
        except (ServerError, TooManyRequestsError, GoneError, ApiConnectionError) as exc:
            raise LockError(f"{self.description}: {action} failed: {exc}") from exc

    # ------------------------------------------------------------ the lock protocol
    async def get(self) -> Observation:
        """``GET`` the object; missing reads as ``exists=False``."""
        client = self._need_client()
        try:
            with self._translated("get"):
                obj = await client.request("GET", self._object_path)
        except NotFoundError:
            return self._forget()
        return self._observe(obj)

    async def create(self, record: LeaderRecord) -> Observation:
        """``POST`` a new object holding `record`; `LockConflict` if it exists already."""
        client = self._need_client()
        with self._translated("create"):
            obj = await client.request("POST", self._collection_path, json=self._new(record))
        return self._observe(obj)

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        """Write `record` if the object is still at `based_on.version`.

        One merge ``PATCH`` (or, where only ``update`` is allowed, one ``PUT`` of the object
        as last seen). `LockConflict` if it changed since, `LockNotFound` if it is gone.
        """
        client = self._need_client()
        if not based_on.exists or not based_on.version:
            raise LockNotFound(f"{self.description}: nothing to update (the object is missing)")
        if not self._put_only:
            body = self._patch(record)
            body.setdefault("metadata", {})["resourceVersion"] = based_on.version
            try:
                with self._translated("patch"):
                    obj = await client.request(
                        "PATCH", self._object_path, json=body, content_type=MERGE_PATCH
                    )
            except NotFoundError as exc:
                self._cached = None
                raise LockNotFound(f"{self.description} does not exist") from exc
            except ForbiddenError as exc:
                self._put_only = True
                logger.info(
                    "%s: not allowed to patch (%s); writing with update (PUT) from now on",
                    self.description,
                    exc.message,
                )
            else:
                return self._observe(obj)
        return await self._put(client, record, based_on)

    async def _put(
        self, client: KubeClient, record: LeaderRecord, based_on: Observation
    ) -> Observation:
        base = self._cached
        if base is None or version_of(base) != based_on.version:
            fresh = await self.get()
            if not fresh.exists:
                raise LockNotFound(f"{self.description} does not exist")
            if fresh.version != based_on.version:
                raise LockConflict(
                    f"{self.description} changed since version {based_on.version} "
                    f"(now {fresh.version})"
                )
            base = self._cached
            assert base is not None
        body = self._replace(base, record)
        body.setdefault("metadata", {})["resourceVersion"] = based_on.version
        try:
            with self._translated("update"):
                obj = await client.request("PUT", self._object_path, json=body)
        except NotFoundError as exc:
            self._cached = None
            raise LockNotFound(f"{self.description} does not exist") from exc
        return self._observe(obj)

    async def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        """Yield each new state of the object after `after`; missing when it is deleted.

        Resumes from `after.version` (or from the last bookmark of this handle's previous
        watch that ended at `after`). When `after` is missing, lists the object first (with
        a field selector on the name) to get a version to watch from, so that a create is
        not missed. A 410 Gone (at open or as an ``ERROR`` event) re-reads the object,
        yields it and goes on from there. Ends when the server closes the stream (its
        ``timeoutSeconds``, `WATCH_TIMEOUT_SECONDS`). Raises `WatchUnavailable` on a 403
        or 405, `LockError` when the stream breaks.
        """
        client = self._need_client()
        last = after
        since = self._resume_from(after)
        if since is None:
            current, since = await self._relist()
            self._resume = (current.exists, current.version, since)
            if _differs(current, last):
                last = current
                yield current
        while True:
            params = {
                "watch": "1",
                "fieldSelector": f"metadata.name={self._name}",
                **({"resourceVersion": since} if since else {}),
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
            }
            gone = False
            failed = ""
            try:
                async with aclosing(client.watch(self._collection_path, params=params)) as events:
                    async for event in events:
                        if gone or failed:
                            continue  # the server ends the stream after an error
                        kind = event.get("type")
                        obj = event.get("object")
                        if not isinstance(obj, dict):
                            failed = f"{self.description}: malformed watch event {event!r}"
                            continue
                        body: dict[str, Any] = obj  # pyright: ignore[reportUnknownVariableType]
                        if kind == "ERROR":
                            if body.get("code") == 410:
                                gone = True
                            else:
                                failed = (
                                    f"{self.description}: the watch failed: {body.get('code')} "
                                    f"{body.get('reason')}: {body.get('message')}"
                                )
                            continue
                        since = version_of(body) or since
                        state: Observation | None = None
                        if kind in ("ADDED", "MODIFIED"):
                            state = self._observe(body)
                        elif kind == "DELETED":
                            state = self._forget()
                        if state is not None and _differs(state, last):
                            last = state
                            self._resume = (last.exists, last.version, since)
                            yield state
                        else:
                            self._resume = (last.exists, last.version, since)
            except GoneError:
                gone = True
            except ForbiddenError as exc:
                raise WatchUnavailable(f"{self.description}: {exc.message}") from exc
            except (ServerError, TooManyRequestsError, ApiConnectionError) as exc:
                raise LockError(f"{self.description}: the watch failed: {exc}") from exc
            except ApiError as exc:
                if exc.status in (405, 501):
                    raise WatchUnavailable(f"{self.description}: {exc.message}") from exc
                raise
            if failed:
                raise LockError(failed)
            if not gone:
                return
            current, since = await self._relist()
            self._resume = (current.exists, current.version, since)
            if _differs(current, last):
                last = current
                yield current

    def _resume_from(self, after: Observation) -> str | None:
        """The version to watch from after `after`; None when a list must come first."""
        if self._resume is not None:
            exists, version, since = self._resume
            if (exists, version) == (after.exists, after.version if after.exists else "") and since:
                return since
        if after.exists and after.version:
            return after.version
        return None

    async def _relist(self) -> tuple[Observation, str]:
        """The object now, and a version of the collection to watch from.

        Lists with a field selector on the name (the list's version is current even when
        the object is old or missing). Without the ``list`` verb, reads the object instead
        and watches from "now" (the apiserver then sends the object as ADDED first).
        """
        client = self._need_client()
        try:
            with self._translated("list"):
                listing = await client.request(
                    "GET",
                    self._collection_path,
                    params={"fieldSelector": f"metadata.name={self._name}"},
                )
        except ForbiddenError:
            return await self.get(), ""
        items: object = listing.get("items")
        found: dict[str, Any] | None = None
        if isinstance(items, list):
            for item in items:  # pyright: ignore[reportUnknownVariableType]
                if isinstance(item, dict) and _metadata(item).get("name") == self._name:  # pyright: ignore[reportUnknownArgumentType]
                    found = item  # pyright: ignore[reportUnknownVariableType]
        current = self._forget() if found is None else self._observe(found)
        return current, version_of(listing)


def _older(obj: dict[str, Any], than: dict[str, Any] | None) -> bool:
    """True if `obj` is an older version than `than` (a lagging watch event)."""
    if than is None:
        return False
    new, known = version_of(obj), version_of(than)
    return new.isdigit() and known.isdigit() and int(new) < int(known)


def _differs(new: Observation, old: Observation) -> bool:
    if new.exists != old.exists:
        return True
    return new.exists and (new.version != old.version or new.raw != old.raw)


def deep_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a decoded JSON object."""
    return copy.deepcopy(obj)
