"""`FakeKubeApi`: an in-memory Kubernetes API for tests in virtual time.

It serves Leases, Endpoints and ConfigMaps the way the real apiserver does where a lock can
tell: one `resourceVersion` counter for everything (etcd's revision), writes with a stale
version refused with 409, a write that changes nothing keeps the version and sends no watch
event, ``Status`` error bodies shaped like the apiserver's, RBAC per verb, and watches as
streams of JSON lines. It runs inside the test's trio run, behind an `httpx.MockTransport`:
no sockets, so `autojump_clock` works, and hangs and timeouts cost no real time.

    api = FakeKubeApi()
    async with api.client() as client:                       # a KubeClient over the fake
        lock = LeaseLock("default", "my-app", client)
        ...
    assert api.count("patch", "leases") == 1                 # exact request counts

Faults: `fail_next()` answers the next requests with an error status (or a connection
error), `hang_next()` holds them until `heal()`, `latency` delays every request;
`end_watches()`, `break_watches()` and `expire_watches()` end open watch streams normally,
with a broken connection, or with a 410 Gone event. `compact()` forgets history so that
watching from an old version gets 410, as after etcd compaction.
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

import httpx
import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping

    from .._kube import KubeClient

__all__ = [
    "ALL_VERBS",
    "ELECTION_VERBS",
    "FakeKubeApi",
    "FakeRequest",
]

ALL_VERBS: Final = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
"""Every verb the fake knows."""

ELECTION_VERBS: Final = frozenset({"get", "create", "update"})
"""What Helm charts usually grant for leader election (no patch, no watch)."""

DEPRECATED_ENDPOINTS: Final = (
    '299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"'
)
"""The Warning header the apiserver (1.33+) adds to every Endpoints response."""

_MERGE_PATCH = "application/merge-patch+json"
_MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")
_DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class _Kind:
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


_KINDS = {
    "leases": _Kind("leases", "coordination.k8s.io", "v1", "Lease"),
    "endpoints": _Kind("endpoints", "", "v1", "Endpoints"),
    "configmaps": _Kind("configmaps", "", "v1", "ConfigMap"),
}
_PATH = re.compile(
    r"/(?:api/v1|apis/coordination\.k8s\.io/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?/?"
)


@final
@dataclass(slots=True)
class FakeRequest:
    """One request the fake received; `status` is filled in when it is answered (0 before)."""

    method: str
    path: str
    query: str
    verb: str
    resource: str
    namespace: str
    name: str
    params: dict[str, str]
    body: Any
    content_type: str
    user: str
    status: int = 0
    at: float = 0.0
    """trio time at which the request arrived."""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}/{self.namespace}/{self.name} -> {self.status}"


@dataclass(slots=True)
class _Fault:
    count: float
    verb: str | None
    resource: str | None
    user: str | None
    status: int = 0  # 0: hang
    reason: str = ""
    error: type[httpx.RequestError] | None = None
    retry_after: float | None = None

    def matches(self, request: FakeRequest) -> bool:
        return (
            (self.verb is None or self.verb == request.verb)
            and (self.resource is None or self.resource == request.resource)
            and (self.user is None or self.user == request.user)
        )


@dataclass(frozen=True, slots=True)
class _Event:
    revision: int
    resource: str
    namespace: str
    name: str
    type: str
    object: dict[str, Any]


@dataclass(slots=True)
class _Watcher:
    kind: _Kind
    namespace: str
    name: str | None
    bookmarks: bool
    cursor: int
    ending: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])


class _Reject(Exception):
    """An error answer, raised while serving and turned into the response."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.response = _status_response(code, reason, message, details)


def _status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
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


def _status_response(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.Response(code, json=_status(code, reason, message, details))


def _merge(target: object, patch: object) -> Any:
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
            result[key] = _merge(result.get(key), value)  # pyright: ignore[reportUnknownArgumentType]
    return result


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta  # pyright: ignore[reportUnknownVariableType]


@final
class _WatchStream(httpx.AsyncByteStream):
    """A watch response body: JSON lines as the fake's state changes.

    An iterator object rather than an async generator, so that a client that stops reading
    early leaves nothing for trio to finalize.
    """

    def __init__(self, api: FakeKubeApi, watcher: _Watcher, deadline: float) -> None:
        self._api = api
        self._watcher = watcher
        self._deadline = deadline
        self._lines: list[bytes] = []
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        api, w = self._api, self._watcher
        while True:
            if self._lines:
                return self._lines.pop(0)
            if self._done:
                api._forget_watcher(w)
                raise StopAsyncIteration
            changed = api._changed
            events = [*w.pending, *api._events_after(w)]
            w.pending.clear()
            if events:
                self._lines = [(json.dumps(e) + "\n").encode() for e in events]
                continue
            if w.ending == "break":
                self._done = True
                api._forget_watcher(w)
                raise httpx.ReadError("the fake API broke the watch connection")
            if w.ending == "expire":
                gone = _status(410, "Expired", "too old resource version")
                self._lines = [(json.dumps({"type": "ERROR", "object": gone}) + "\n").encode()]
                self._done = True
                continue
            if w.ending is not None:
                self._done = True
                continue
            with trio.move_on_at(self._deadline):
                await changed.wait()
            if trio.current_time() >= self._deadline:
                self._done = True

    async def aclose(self) -> None:
        self._done = True
        self._api._forget_watcher(self._watcher)


@final
class FakeKubeApi:
    """An in-memory Kubernetes API serving leases, endpoints and configmaps.

    `verbs` is the RBAC of clients made without their own (`None`: everything allowed), a
    mapping from resource to verbs, e.g. ``{"leases": ELECTION_VERBS}``. `wall` gives the
    wall-clock time for ``creationTimestamp``. `gone_as_status=True` answers a watch from a
    compacted version with HTTP 410 instead of an ``ERROR`` event (the apiserver does both).
    `warnings=False` leaves out the Endpoints deprecation Warning header. `namespaces`, when
    given, are the only namespaces in which objects can be created.

    Like the apiserver, a ``PUT`` to an Endpoints object that does not exist creates it
    (Endpoints allow create-on-update); Leases and ConfigMaps answer 404.
    """

    def __init__(
        self,
        *,
        verbs: Mapping[str, Collection[str]] | None = None,
        wall: Callable[[], _dt.datetime] | None = None,
        gone_as_status: bool = False,
        warnings: bool = True,
        namespaces: Collection[str] | None = None,
    ) -> None:
        self.verbs = None if verbs is None else {k: frozenset(v) for k, v in verbs.items()}
        self.gone_as_status = gone_as_status
        self.warnings = warnings
        self.namespaces = None if namespaces is None else set(namespaces)
        """The namespaces that exist (None: every one); creating elsewhere gets 404."""
        self.latency = 0.0
        """Seconds every request waits before it is served."""
        self.requests: list[FakeRequest] = []
        """Every request received, in order."""
        self._wall = wall or (lambda: _dt.datetime.now(_dt.UTC))
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._revision = 1
        self._compacted = 0
        self._events: list[_Event] = []
        self._changed = trio.Event()
        self._healed = trio.Event()
        self._faults: list[_Fault] = []
        self._tokens: dict[str, tuple[str, dict[str, frozenset[str]] | None]] = {}
        self._token_ids = itertools.count(1)
        self._watchers: list[_Watcher] = []
        self.transport = httpx.MockTransport(self._handle)
        """An `httpx.MockTransport` serving this API (its handler is async)."""

    def __repr__(self) -> str:
        return f"<FakeKubeApi revision={self._revision} objects={len(self._objects)}>"

    # ------------------------------------------------------------------ clients
    def token(
        self, user: str | None = None, *, verbs: Mapping[str, Collection[str]] | None = None
    ) -> str:
        """A new bearer token for `user`, with its own RBAC (`verbs`, else the API's)."""
        n = next(self._token_ids)
        token = f"fake-token-{n}"
        profile = None if verbs is None else {k: frozenset(v) for k, v in verbs.items()}
        self._tokens[token] = (user or f"user-{n}", profile)
        return token

    def client(
        self,
        *,
        namespace: str = "default",
        user: str | None = None,
        verbs: Mapping[str, Collection[str]] | None = None,
    ) -> KubeClient:
        """A `KubeClient` over this API (use it as ``async with``), with its own token."""
        from .._kube import KubeClient, KubeConfig

        config = KubeConfig(
            server="https://fake-kube-api.invalid",
            namespace=namespace,
            token=self.token(user, verbs=verbs),
        )
        return KubeClient(config, transport=self.transport)

    # ------------------------------------------------------------------ state
    @property
    def revision(self) -> int:
        """The current resourceVersion of the whole store."""
        return self._revision

    def get_object(
        self, resource: str, name: str, namespace: str = "default"
    ) -> dict[str, Any] | None:
        """A copy of the stored object, None when missing."""
        obj = self._objects.get((resource, namespace, name))
        return None if obj is None else copy.deepcopy(obj)

    def put_object(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store `obj` (create or replace, no precondition), as another client would."""
        kind = _KINDS[resource]
        new = copy.deepcopy(dict(obj))
        meta = _meta(new)
        namespace = str(meta.get("namespace") or "default")
        name = str(meta["name"])
        meta["namespace"] = namespace
        old = self._objects.get((resource, namespace, name))
        return self._store(kind, namespace, name, new, old)

    def delete_object(self, resource: str, name: str, namespace: str = "default") -> None:
        """Delete the object (a DELETED event is sent); nothing if it is missing."""
        obj = self._objects.pop((resource, namespace, name), None)
        if obj is not None:
            self._record_deletion(_KINDS[resource], namespace, name, obj)

    def compact(self) -> None:
        """Forget the history so far: watching from an older version gets 410 Gone."""
        self._compacted = self._revision
        self._events = [e for e in self._events if e.revision > self._compacted]

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        count: int = 1,
        *,
        verb: str | None = None,
        resource: str | None = None,
        user: str | None = None,
        status: int = 500,
        reason: str | None = None,
        error: type[httpx.RequestError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (or raise `error`).

        `verb` (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``),
        `resource` and `user` narrow which requests match. `error` is an `httpx` exception class
        such as `httpx.ConnectError`: the request then fails as a broken connection. A 403 is
        answered as RBAC refuses (the apiserver's message, naming the user and verb), as an
        apiserver does for a moment after it starts, before its RBAC caches are filled.
        """
        default_reason = {
            401: "Unauthorized",
            403: "Forbidden",
            429: "TooManyRequests",
            500: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
        }.get(status, "InternalError")
        self._faults.append(
            _Fault(
                count,
                verb,
                resource,
                user,
                status,
                reason or default_reason,
                error,
                retry_after,
            )
        )

    def hang_next(
        self,
        count: int | None = 1,
        *,
        verb: str | None = None,
        resource: str | None = None,
        user: str | None = None,
    ) -> None:
        """Hold the next `count` matching requests (all, if None) unanswered until `heal()`.

        `verb`, `resource` and `user` narrow which requests match, as for `fail_next()`.
        """
        self._faults.append(_Fault(math.inf if count is None else count, verb, resource, user))

    def heal(self) -> None:
        """Drop every pending fault and let hung requests go on."""
        self._faults.clear()
        self._healed.set()
        self._healed = trio.Event()

    def end_watches(self) -> None:
        """End every open watch stream normally, as at the server's timeout."""
        self._end_watches("end")

    def break_watches(self) -> None:
        """Break every open watch stream (the client sees a read error)."""
        self._end_watches("break")

    def expire_watches(self) -> None:
        """End every open watch stream with an ``ERROR`` event 410 (too old version)."""
        self._end_watches("expire")

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current version to every watch that allows them."""
        for w in self._watchers:
            if w.bookmarks:
                w.pending.extend(self._events_after(w))
                w.pending.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": w.kind.kind,
                            "apiVersion": w.kind.api_version,
                            "metadata": {"resourceVersion": str(self._revision)},
                        },
                    }
                )
        self._wake()

    @property
    def open_watches(self) -> int:
        """How many watch streams are open now."""
        return len(self._watchers)

    # ------------------------------------------------------------------ request log
    def count(
        self, verb: str | None = None, resource: str | None = None, *, name: str | None = None
    ) -> int:
        """How many requests matched (every argument that is given must match)."""
        return len(self.filter(verb, resource, name=name))

    def filter(
        self, verb: str | None = None, resource: str | None = None, *, name: str | None = None
    ) -> list[FakeRequest]:
        """The requests that matched, in order."""
        return [
            r
            for r in self.requests
            if (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (name is None or r.name == name)
        ]

    def clear_requests(self) -> None:
        self.requests.clear()

    # ------------------------------------------------------------------ internals
    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _forget_watcher(self, w: _Watcher) -> None:
        self._watchers = [x for x in self._watchers if x is not w]

    def _end_watches(self, how: str) -> None:
        for w in self._watchers:
            w.ending = w.ending or how
        self._wake()

    def _events_after(self, w: _Watcher) -> Iterable[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for event in self._events:
            if event.revision <= w.cursor:
                continue
            if event.resource != w.kind.resource or event.namespace != w.namespace:
                continue
            if w.name is not None and event.name != w.name:
                continue
            found.append({"type": event.type, "object": copy.deepcopy(event.object)})
        w.cursor = max(w.cursor, self._revision)
        return found

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _store(
        self,
        kind: _Kind,
        namespace: str,
        name: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        meta = _meta(new)
        meta["name"] = name
        meta["namespace"] = namespace
        if old is not None:
            old_meta = _meta(old)
            for key in ("uid", "creationTimestamp"):
                if key in old_meta:
                    meta[key] = old_meta[key]
            meta["resourceVersion"] = old_meta.get("resourceVersion")
            if new == old:
                return copy.deepcopy(old)  # a write that changes nothing keeps the version
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault(
                "creationTimestamp", self._wall().astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        meta["resourceVersion"] = self._next_revision()
        self._objects[(kind.resource, namespace, name)] = new
        self._events.append(
            _Event(
                self._revision,
                kind.resource,
                namespace,
                name,
                "ADDED" if old is None else "MODIFIED",
                copy.deepcopy(new),
            )
        )
        self._wake()
        return copy.deepcopy(new)

    def _record_deletion(self, kind: _Kind, namespace: str, name: str, obj: dict[str, Any]) -> None:
        gone = copy.deepcopy(obj)
        _meta(gone)["resourceVersion"] = self._next_revision()
        self._events.append(_Event(self._revision, kind.resource, namespace, name, "DELETED", gone))
        self._wake()

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        match = _PATH.fullmatch(request.url.path)
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = request.content.decode(errors="replace")
        namespace, resource, name = match.groups() if match else ("", "", None)
        verb = self._verb(request.method, name, params)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        user, profile = self._tokens.get(token, ("", None))
        record = FakeRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode(),
            verb=verb,
            resource=resource,
            namespace=namespace,
            name=name or "",
            params=params,
            body=body,
            content_type=request.headers.get("content-type", ""),
            user=user,
            at=trio.current_time(),
        )
        self.requests.append(record)
        response = await self._answer(request, record, profile if token in self._tokens else {})
        record.status = response.status_code
        if self.warnings and resource == "endpoints":
            response.headers["Warning"] = DEPRECATED_ENDPOINTS
        return response

    @staticmethod
    def _verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
        if method == "GET":
            if name is not None:
                return "get"
            return "watch" if params.get("watch") in ("1", "true") else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method, method.lower())

    async def _answer(
        self,
        request: httpx.Request,
        record: FakeRequest,
        profile: Mapping[str, frozenset[str]] | None,
    ) -> httpx.Response:
        if self.latency:
            await trio.sleep(self.latency)
        for fault in self._faults:
            if fault.count > 0 and fault.matches(record):
                fault.count -= 1
                if fault.status == 0:
                    await self._healed.wait()
                    break
                if fault.error is not None:
                    raise fault.error("injected by the fake API", request=request)
                kind = _KINDS.get(record.resource)
                if fault.status == 403 and kind is not None:
                    return self._forbidden(kind, record)
                response = _status_response(
                    fault.status, fault.reason, f"injected {fault.status} {fault.reason}"
                )
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
                return response
        self._faults = [f for f in self._faults if f.count > 0]
        await trio.lowlevel.checkpoint()
        if record.user == "":
            return _status_response(401, "Unauthorized", "Unauthorized")
        kind = _KINDS.get(record.resource)
        if kind is None or not record.namespace:
            return _status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        allowed = self.verbs if profile is None else profile
        if allowed is not None and record.verb not in allowed.get(kind.resource, ()):
            return self._forbidden(kind, record)
        try:
            return await self._serve(kind, record)
        except _Reject as reject:
            return reject.response

    def _forbidden(self, kind: _Kind, record: FakeRequest) -> httpx.Response:
        target = f'{kind.qualified} "{record.name}"' if record.name else kind.qualified
        message = (
            f'{target} is forbidden: User "{record.user}" cannot {record.verb} resource '
            f'"{kind.resource}" in API group "{kind.group}" in the namespace "{record.namespace}"'
        )
        details = {"kind": kind.resource, **({"group": kind.group} if kind.group else {})}
        if record.name:
            details = {"name": record.name, **details}
        return _status_response(403, "Forbidden", message, details)

    def _details(self, kind: _Kind, name: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name}
        if kind.group:
            details["group"] = kind.group
        details["kind"] = kind.resource
        return details

    def _not_found(self, kind: _Kind, name: str) -> _Reject:
        return _Reject(
            404, "NotFound", f'{kind.qualified} "{name}" not found', self._details(kind, name)
        )

    def _conflict(self, kind: _Kind, name: str) -> _Reject:
        return _Reject(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been '
            f"modified; please apply your changes to the latest version and try again",
            self._details(kind, name),
        )

    async def _serve(self, kind: _Kind, record: FakeRequest) -> httpx.Response:
        key = (kind.resource, record.namespace, record.name)
        if record.verb == "get":
            obj = self._objects.get(key)
            if obj is None:
                raise self._not_found(kind, record.name)
            return httpx.Response(200, json=obj)
        if record.verb == "list":
            selected = self._selected(record)
            items = [
                copy.deepcopy(o)
                for (res, ns, nm), o in sorted(self._objects.items())
                if res == kind.resource and ns == record.namespace and selected in (None, nm)
            ]
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return httpx.Response(
                200,
                json={
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(self._revision)},
                    "items": items,
                },
            )
        if record.verb == "watch":
            return self._watch(kind, record)
        if record.verb == "create":
            if self.namespaces is not None and record.namespace not in self.namespaces:
                raise _Reject(
                    404,
                    "NotFound",
                    f'namespaces "{record.namespace}" not found',
                    {"name": record.namespace, "kind": "namespaces"},
                )
            new = self._decode(kind, record, record.body)
            meta = _meta(new)
            name = meta.get("name")
            if not isinstance(name, str) or not name:
                raise _Reject(
                    422,
                    "Invalid",
                    f"{kind.kind} in version {kind.version!r} is invalid: metadata.name: "
                    f"Required value: name or generateName is required",
                )
            if meta.get("resourceVersion"):
                raise _Reject(
                    500,
                    "InternalError",
                    "resourceVersion should not be set on objects to be created",
                )
            key = (kind.resource, record.namespace, name)
            if key in self._objects:
                raise _Reject(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{name}" already exists',
                    self._details(kind, name),
                )
            self._validate(kind, new, name)
            return httpx.Response(201, json=self._store(kind, record.namespace, name, new, None))
        if record.verb == "update":
            old = self._objects.get(key)
            new = self._decode(kind, record, record.body)
            if old is None and kind.resource == "endpoints":  # create-on-update
                _meta(new).pop("resourceVersion", None)
                for key_ in ("uid", "creationTimestamp"):
                    _meta(new).pop(key_, None)
                self._validate(kind, new, record.name)
                return httpx.Response(
                    201, json=self._store(kind, record.namespace, record.name, new, None)
                )
            if old is None:
                raise self._not_found(kind, record.name)
            wanted = _meta(new).get("resourceVersion")
            if not wanted and kind.resource == "leases":
                raise _Reject(
                    422,
                    "Invalid",
                    f'{kind.qualified} "{record.name}" is invalid: metadata.resourceVersion: '
                    f"Invalid value: 0: must be specified for an update",
                    self._details(kind, record.name),
                )
            if wanted and wanted != _meta(old).get("resourceVersion"):
                raise self._conflict(kind, record.name)
            self._validate(kind, new, record.name)
            return httpx.Response(
                200, json=self._store(kind, record.namespace, record.name, new, old)
            )
        if record.verb == "patch":
            if record.content_type.split(";")[0].strip() != _MERGE_PATCH:
                raise _Reject(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {_MERGE_PATCH} (the fake serves merge patches only)",
                )
            old = self._objects.get(key)
            if old is None:
                raise self._not_found(kind, record.name)
            patch: object = record.body
            if not isinstance(patch, dict):
                raise _Reject(400, "BadRequest", "the patch is not a JSON object")
            patched = _merge(copy.deepcopy(old), patch)  # pyright: ignore[reportUnknownArgumentType]
            new = self._decode(kind, record, patched)
            if _meta(new).get("resourceVersion") != _meta(old).get("resourceVersion"):
                raise self._conflict(kind, record.name)
            self._validate(kind, new, record.name)
            return httpx.Response(
                200, json=self._store(kind, record.namespace, record.name, new, old)
            )
        if record.verb == "delete":
            obj = self._objects.pop(key, None)
            if obj is None:
                raise self._not_found(kind, record.name)
            self._record_deletion(kind, record.namespace, record.name, obj)
            return httpx.Response(
                200,
                json={
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {**self._details(kind, record.name), "uid": _meta(obj).get("uid")},
                },
            )
        raise _Reject(
            405, "MethodNotAllowed", f"the server does not allow this method ({record.method})"
        )

    def _selected(self, record: FakeRequest) -> str | None:
        selector = record.params.get("fieldSelector", "")
        if not selector:
            return None
        field_name, _, value = selector.replace("==", "=").partition("=")
        if field_name != "metadata.name":
            raise _Reject(
                400,
                "BadRequest",
                f'unable to parse requirement: field label "{field_name}" not supported '
                f"by the fake",
            )
        return value

    def _watch(self, kind: _Kind, record: FakeRequest) -> httpx.Response:
        selected = self._selected(record)
        since = record.params.get("resourceVersion", "")
        timeout = record.params.get("timeoutSeconds")
        deadline = trio.current_time() + (float(timeout) if timeout else _DEFAULT_WATCH_TIMEOUT)
        bookmarks = record.params.get("allowWatchBookmarks") == "true"
        w = _Watcher(kind, record.namespace, selected, bookmarks, self._revision)
        if since in ("", "0"):
            for (res, ns, nm), obj in sorted(self._objects.items()):
                if res == kind.resource and ns == record.namespace and selected in (None, nm):
                    w.pending.append({"type": "ADDED", "object": copy.deepcopy(obj)})
        else:
            try:
                start = int(since)
            except ValueError:
                raise _Reject(400, "BadRequest", f"invalid resource version: {since!r}") from None
            if start < self._compacted:
                message = f"too old resource version: {start} ({self._compacted})"
                if self.gone_as_status:
                    raise _Reject(410, "Expired", message)
                w.pending.append({"type": "ERROR", "object": _status(410, "Expired", message)})
                w.ending = "end"
            else:
                w.cursor = start
        self._watchers.append(w)
        return httpx.Response(
            200,
            headers={"Content-Type": "application/json"},
            stream=_WatchStream(self, w, deadline),
        )

    def _decode(self, kind: _Kind, record: FakeRequest, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Reject(400, "BadRequest", f"the body of the {record.verb} is not a JSON object")
        obj: dict[str, Any] = copy.deepcopy(body)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
        if (
            obj.get("kind", kind.kind) != kind.kind
            or obj.get("apiVersion", kind.api_version) != kind.api_version
        ):
            raise _Reject(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({kind.api_version})",
            )
        meta = _meta(obj)
        if meta.get("namespace", record.namespace) != record.namespace:
            raise _Reject(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if record.name and meta.get("name", record.name) != record.name:
            raise _Reject(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({record.name})",
            )
        annotations = meta.get("annotations")
        if annotations is not None and (
            not isinstance(annotations, dict)
            or not all(isinstance(v, str) for v in annotations.values())  # pyright: ignore[reportUnknownVariableType]
        ):
            raise _Reject(
                400,
                "BadRequest",
                f"{kind.kind} in version {kind.version!r} cannot be handled as a {kind.kind}: "
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.annotations "
                f"of type string",
            )
        return obj

    def _validate(self, kind: _Kind, obj: dict[str, Any], name: str) -> None:
        if kind.resource != "leases":
            return
        spec = obj.get("spec")
        if spec is None:
            return
        if not isinstance(spec, dict):
            raise self._undecodable(kind, "spec is not an object")
        fields: dict[str, Any] = spec  # pyright: ignore[reportUnknownVariableType]
        for key in ("acquireTime", "renewTime"):
            value = fields.get(key)
            if value is not None and (
                not isinstance(value, str) or not _MICRO_TIME.fullmatch(value)
            ):
                raise self._undecodable(
                    kind,
                    f'parsing time "{value}" as "2006-01-02T15:04:05.000000Z07:00": '
                    f"cannot parse as MicroTime",
                )
        for key in ("leaseDurationSeconds", "leaseTransitions"):
            value = fields.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise self._undecodable(
                    kind, f"json: cannot unmarshal into LeaseSpec.{key} of type int32"
                )
        holder = fields.get("holderIdentity")
        if holder is not None and not isinstance(holder, str):
            raise self._undecodable(
                kind, "json: cannot unmarshal into LeaseSpec.holderIdentity of type string"
            )
        duration = fields.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            raise _Reject(
                422,
                "Invalid",
                f'{kind.kind}.{kind.group} "{name}" is invalid: spec.leaseDurationSeconds: '
                f"Invalid value: {duration}: must be greater than 0",
                {**self._details(kind, name), "kind": kind.kind},
            )
        transitions = fields.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            raise _Reject(
                422,
                "Invalid",
                f'{kind.kind}.{kind.group} "{name}" is invalid: spec.leaseTransitions: '
                f"Invalid value: {transitions}: must be greater than or equal to 0",
                {**self._details(kind, name), "kind": kind.kind},
            )

    def _undecodable(self, kind: _Kind, why: str) -> _Reject:
        return _Reject(
            400,
            "BadRequest",
            f"{kind.kind} in version {kind.version!r} cannot be handled as a {kind.kind}: {why}",
        )
