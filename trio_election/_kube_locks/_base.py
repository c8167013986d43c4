"""`KubeLock`: one lock object in the Kubernetes API, read and written with preconditions.

What every Kubernetes lock does the same way, whatever holds the record (a Lease's spec or
an annotation):

- **get**: ``GET`` the object; 404 reads as missing.
- **create**: ``POST`` the object; 409 (it already exists) is `LockConflict`.
- **update**: a JSON merge ``PATCH`` (``application/merge-patch+json``) of the record only,
  carrying ``metadata.resourceVersion``: the apiserver refuses it with 409 if the object
  changed, and everything else on the object (labels, other annotations, other fields) is
  kept. One request, no read first. When RBAC allows ``update`` but not ``patch`` (403 on
  a patch that has never worked), the handle ``PUT``\\ s the whole object as last seen, with
  its ``resourceVersion`` (reading it first if it has not seen that version); once such a
  ``PUT`` has worked it writes with ``PUT`` only, and tries ``PATCH`` again after
  `PATCH_RETRY_SECONDS`. (When the ``PUT`` is refused too, RBAC may be warming up: nothing
  is switched.)
- **watch**: a Kubernetes watch of the collection with a field selector on the name,
  resumed from the last ``resourceVersion`` (bookmarks included); 410 Gone re-reads. When
  several handles of one client watch in one collection, they share one watch of it
  (`._streams`).

Errors, as the engine expects them: 409 is `LockConflict`, 404 on update is
`LockNotFound`, transport failures, 5xx, 429 and 410 are `LockError` (retried). A 403 or
a 401 is `LockError` too while it may heal (see `._forbidden`: until the refusals have
lasted `FORBIDDEN_GRACE_SECONDS`); past that it is a missing permission: `WatchUnavailable`
on a watch (the engine polls), a fallback to ``PUT`` on a patch, and on a read or a write
the `ForbiddenError` (or `UnauthorizedError`) itself. A 405 on a watch is
`WatchUnavailable`. Everything else (422, a missing namespace, a certificate that fails TLS
verification) comes out unchanged: an `ElectionError` that retrying cannot cure.
"""

from __future__ import annotations

import copy
import logging
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio

from .._core._exceptions import ConfigError, LockConflict, LockError, LockNotFound, WatchUnavailable
from .._core._lock import MISSING, LeaderRecord, Nomination, Observation
from .._kube._errors import (
    ApiConnectionError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from ._forbidden import Permissions
from ._records import NOMINEE_ANNOTATION, nomination_from_annotation, nomination_to_annotation
from ._streams import WATCH_TIMEOUT_SECONDS, object_events

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator

    from .._kube import KubeClient

__all__ = [
    "PATCH_RETRY_SECONDS",
    "WATCH_TIMEOUT_SECONDS",
    "KubeLock",
    "check_name",
    "check_namespace",
]

logger = logging.getLogger("trio_election")

MERGE_PATCH = "application/merge-patch+json"

PUT_AFTER_REFUSALS = 3
"""PATCH refused while PUT works this many writes in a row: write with PUT for a while."""

PATCH_RETRY_SECONDS = 300.0
"""After a 403 on ``PATCH`` made a handle write with ``PUT``, how long until it tries
``PATCH`` again (RBAC may have been fixed; a fallback is never kept for good)."""

_AUTHORIZED = frozenset({404, 409, 410, 422})
"""Error statuses that the apiserver sends only after RBAC allowed the verb."""

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
    last seen, which verbs have worked (to tell a 403 that will heal from a missing
    permission), and whether to write with ``PUT`` for now. `with_client()` gives a fresh
    handle with its own memory; `elect()` makes one per candidate. Subclasses say where the
    record lives in the object.
    """

    resource: ClassVar[str]
    """The plural resource name, e.g. ``leases``."""
    api_version: ClassVar[str]
    kind: ClassVar[str]
    _api_root: ClassVar[str]

    __slots__ = (
        "_cached",
        "_client",
        "_echo",
        "_name",
        "_namespace",
        "_patch_refusals",
        "_permissions",
        "_put_until",
        "_resume",
    )

    def __init__(self, namespace: str, name: str, client: KubeClient | None = None) -> None:
        self._namespace = check_namespace(namespace)
        self._name = check_name(name)
        self._client = client
        self._cached: dict[str, Any] | None = None
        self._echo: Observation | None = None
        """What our last write read back: its watch event (the echo) is not read again."""
        self._put_until: float | None = None
        """Event-loop time until which writes are PUTs (patch was refused); None: patch."""
        self._patch_refusals = 0
        self._permissions = Permissions(self.description)
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
    def uid(self) -> str | None:
        """The object's ``metadata.uid`` as last seen (None before it has been seen)."""
        uid = None if self._cached is None else _metadata(self._cached).get("uid")
        return uid if isinstance(uid, str) else None

    @property
    def description(self) -> str:
        """``<resource>/<namespace>/<name>``, e.g. ``leases/default/my-app``."""
        return f"{self.resource}/{self._namespace}/{self._name}"

    @property
    def lock_key(self) -> tuple[str | None, str]:
        """The API server and the object: equal for every handle on this lock object."""
        return (None if self._client is None else self._client.config.server, self.description)

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
        annotations = _metadata(obj).get("annotations")
        nominee = (
            nomination_from_annotation(annotations.get(NOMINEE_ANNOTATION))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            if isinstance(annotations, dict)
            else None
        )
        return Observation(
            exists=True, record=record, version=version_of(obj), raw=raw, nominee=nominee
        )

    def _written(self, obj: dict[str, Any]) -> Observation:
        """`_observe` for the object a write of ours returned, remembered as the echo."""
        self._echo = self._observe(obj)
        return self._echo

    def _seen(self, obj: dict[str, Any]) -> Observation:
        """`_observe` for an object from a watch: the echo of our last write (the same
        version) is that write's observation, not parsed again."""
        echo = self._echo
        if echo is not None and echo.version and version_of(obj) == echo.version:
            return echo
        return self._observe(obj)

    def _forget(self) -> Observation:
        self._cached = None
        return MISSING

    @contextmanager
    def _request(self, verb: str, *, judge_403: bool = True) -> Generator[None]:
        """One request of `verb`: note whether RBAC let it through, and turn the access
        layer's errors into what the engine expects of a lock. A 403 is judged (transient
        `LockError`, or the `ForbiddenError` itself) unless the caller judges it."""
        try:
            yield
        except ForbiddenError as exc:
            if judge_403 and (transient := self._permissions.judge(verb, exc)) is not None:
                raise transient from exc
            raise
        except UnauthorizedError as exc:
            if (transient := self._permissions.judge(verb, exc)) is not None:
                raise transient from exc
            raise
        except ConflictError as exc:
            self._permissions.worked(verb)
            raise LockConflict(f"{self.description}: {verb}: {exc.message}") from exc
        except GoneError as exc:
            self._permissions.worked(verb)
            raise LockError(f"{self.description}: {verb} failed: {exc}") from exc
        except (ServerError, TooManyRequestsError, ApiConnectionError) as exc:
            raise LockError(
                f"{self.description}: {verb} failed: {exc}", retry_after=_retry_after(exc)
            ) from exc
        except ApiError as exc:
            if exc.status in _AUTHORIZED:
                self._permissions.worked(verb)
            raise
        self._permissions.worked(verb)

    # ------------------------------------------------------------ the lock protocol
    async def get(self) -> Observation:
        """``GET`` the object; missing reads as ``exists=False``."""
        client = self._need_client()
        try:
            with self._request("get"):
                obj = await client.request("GET", self._object_path)
        except NotFoundError:
            return self._forget()
        return self._observe(obj)

    async def create(self, record: LeaderRecord) -> Observation:
        """``POST`` a new object holding `record`; `LockConflict` if it exists already."""
        return await self._create(self._new(record))

    async def _create(self, body: dict[str, Any]) -> Observation:
        client = self._need_client()
        with self._request("create"):
            obj = await client.request("POST", self._collection_path, json=body)
        return self._written(obj)

    async def take(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination
    ) -> Observation:
        """`create` (when `based_on` is missing) or `update` with `record`, with `nominee`
        in `NOMINEE_ANNOTATION` in the same request."""
        value = nomination_to_annotation(nominee)
        if not based_on.exists:
            body = self._new(record)
            body.setdefault("metadata", {}).setdefault("annotations", {})[NOMINEE_ANNOTATION] = (
                value
            )
            return await self._create(body)
        patch = self._patch(record)
        patch.setdefault("metadata", {}).setdefault("annotations", {})[NOMINEE_ANNOTATION] = value
        return await self._write(
            based_on, patch, lambda obj: _annotated(self._replace(obj, record), value)
        )

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        """Write `record` if the object is still at `based_on.version`.

        One merge ``PATCH`` (or, where only ``update`` is allowed, one ``PUT`` of the object
        as last seen). `LockConflict` if it changed since, `LockNotFound` if it is gone.
        """
        return await self._write(
            based_on, self._patch(record), lambda obj: self._replace(obj, record)
        )

    async def nominate(self, nominee: Nomination | None, based_on: Observation) -> Observation:
        """Name `nominee` the next holder (None: remove the name) in `NOMINEE_ANNOTATION`,
        if the object is still at `based_on.version`; the record is not touched.

        One merge ``PATCH`` of the annotation (or a ``PUT``, as `update` falls back).
        `LockConflict` if the object changed since, `LockNotFound` if it is gone.
        """
        value = None if nominee is None else nomination_to_annotation(nominee)
        patch: dict[str, Any] = {"metadata": {"annotations": {NOMINEE_ANNOTATION: value}}}
        return await self._write(based_on, patch, lambda obj: _annotated(obj, value))

    async def _write(
        self,
        based_on: Observation,
        patch: dict[str, Any],
        replace: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Observation:
        """Write `patch` (a merge patch), or where only ``update`` is allowed ``PUT``
        `replace(object as last seen)`, if the object is still at `based_on.version`."""
        client = self._need_client()
        if not based_on.exists or not based_on.version:
            raise LockNotFound(f"{self.description}: nothing to update (the object is missing)")
        if self._put_until is None or anyio.current_time() >= self._put_until:
            body = patch
            body.setdefault("metadata", {})["resourceVersion"] = based_on.version
            try:
                with self._request("patch", judge_403=False):
                    obj = await client.request(
                        "PATCH", self._object_path, json=body, content_type=MERGE_PATCH
                    )
            except NotFoundError as exc:
                self._cached = None
                raise LockNotFound(f"{self.description} does not exist") from exc
            except ForbiddenError as exc:
                self._patch_refused(exc)
                # PUT this time; only a PUT that works while patch is refused switches the
                # handle to PUT (a 403 on both is RBAC warming up, or no rights at all)
                written = await self._put(client, replace, based_on)
                self._put_instead(exc)
                return written
            else:
                self._patch_refusals = 0
                if self._put_until is not None:
                    self._put_until = None
                    logger.info("%s: patch is allowed now; writing with patch", self.description)
                return self._written(obj)
        return await self._put(client, replace, based_on)

    def _patch_refused(self, exc: ForbiddenError) -> None:
        """A 403 on ``PATCH``: retried (`LockError`) if patch has worked and the refusals
        have not lasted the grace window; else the caller tries ``PUT``."""
        if self._permissions.has_worked("patch"):
            transient = self._permissions.judge("patch", exc)
            if transient is not None:
                raise transient from exc

    def _put_instead(self, exc: ForbiddenError) -> None:
        """``PUT`` worked where ``PATCH`` was refused: after `PUT_AFTER_REFUSALS` such writes
        in a row, write with ``PUT`` for a while. (A new RoleBinding can allow update a
        moment before patch: one refusal is no reason to give up on patch for minutes.)"""
        self._patch_refusals += 1
        if self._patch_refusals < PUT_AFTER_REFUSALS:
            return
        self._put_until = anyio.current_time() + PATCH_RETRY_SECONDS
        logger.log(
            logging.INFO if self._patch_refusals == PUT_AFTER_REFUSALS else logging.DEBUG,
            "%s: not allowed to patch (%s); writing with update (PUT), and trying patch again "
            "in %g s",
            self.description,
            exc.message,
            PATCH_RETRY_SECONDS,
        )

    async def _put(
        self,
        client: KubeClient,
        replace: Callable[[dict[str, Any]], dict[str, Any]],
        based_on: Observation,
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
        body = replace(base)
        body.setdefault("metadata", {})["resourceVersion"] = based_on.version
        try:
            with self._request("update"):
                obj = await client.request("PUT", self._object_path, json=body)
        except NotFoundError as exc:
            self._cached = None
            raise LockNotFound(f"{self.description} does not exist") from exc
        return self._written(obj)

    async def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        """Yield each new state of the object after `after`; missing when it is deleted.

        Resumes from `after.version` (or from the last bookmark of this handle's previous
        watch that ended at `after`). When `after` is missing, lists the object first (with
        a field selector on the name) to get a version to watch from, so that a create is
        not missed. A 410 Gone (at open or as an ``ERROR`` event) re-reads the object,
        yields it and goes on from there. Ends when the server closes the stream (its
        ``timeoutSeconds``, `WATCH_TIMEOUT_SECONDS`). Raises `WatchUnavailable` on a 405 or
        a 403 that is a missing permission, `LockError` on a 403 that may heal (see
        `._forbidden`) and when the stream breaks.
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
            gone = False
            opened = False
            try:
                async with object_events(
                    client, self._collection_path, self._name, since
                ) as events:
                    async for event in events:
                        if not opened:  # the server answered 200: RBAC allows watch
                            opened = True
                            self._permissions.worked("watch")
                        since = event.version or since
                        state: Observation | None = None
                        if event.type in ("ADDED", "MODIFIED"):
                            state = self._seen(event.object)
                        elif event.type == "DELETED":
                            state = self._forget()
                        if state is not None and _differs(state, last):
                            last = state
                            self._resume = (last.exists, last.version, since)
                            yield state
                        else:
                            self._resume = (last.exists, last.version, since)
            except GoneError:
                self._permissions.worked("watch")
                gone = True
            except ForbiddenError as exc:
                transient = self._permissions.judge("watch", exc)
                if transient is not None:
                    raise transient from exc
                raise WatchUnavailable(f"{self.description}: {exc.message}") from exc
            except (ServerError, TooManyRequestsError, ApiConnectionError) as exc:
                raise LockError(
                    f"{self.description}: the watch failed: {exc}", retry_after=_retry_after(exc)
                ) from exc
            except ApiError as exc:
                if exc.status in (405, 501):
                    raise WatchUnavailable(f"{self.description}: {exc.message}") from exc
                raise
            if not gone:
                self._permissions.worked("watch")  # a stream that ended normally: it was open
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
            with self._request("list", judge_403=False):
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


def _retry_after(exc: Exception) -> float | None:
    """A 429's Retry-After (seconds), for the engine to wait before its next try."""
    return exc.retry_after if isinstance(exc, TooManyRequestsError) else None


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


def _annotated(obj: dict[str, Any], value: str | None) -> dict[str, Any]:
    """A copy of `obj` whose `NOMINEE_ANNOTATION` is `value` (None: removed)."""
    new = deep_copy(obj)
    metadata = new.setdefault("metadata", {})
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = metadata["annotations"] = {}
    if value is None:
        annotations.pop(NOMINEE_ANNOTATION, None)  # pyright: ignore[reportUnknownMemberType]
    else:
        annotations[NOMINEE_ANNOTATION] = value
    return new


def deep_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a decoded JSON object."""
    return copy.deepcopy(obj)
