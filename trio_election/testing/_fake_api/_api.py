"""`FakeKubeApi`: the in-memory Kubernetes API itself (state, faults, serving)."""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import itertools
import json
import math
import uuid
from typing import TYPE_CHECKING, Any, final

import anyio
import httpx

from ..._kube_locks._detached import spawn_detached
from ._objects import (
    DEPRECATED_ENDPOINTS,
    KINDS,
    MERGE_PATCH,
    PATH,
    Kind,
    Reject,
    decode,
    merge,
    status,
    status_response,
    validate,
)
from ._objects import (
    details as object_details,
)
from ._objects import (
    meta as object_meta,
)
from ._requests import Conditions, FakeRequest, Fault
from ._watch import Event, EventLog, Watcher, WatchStream, due_events

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from ..._kube import KubeClient

__all__ = ["FakeKubeApi"]

_DEFAULT_WATCH_TIMEOUT = 1800.0
_NORMAL = Conditions()
_UNUSED_CA = b"""-----BEGIN CERTIFICATE-----
MIIBZzCCAQ6gAwIBAgIBATAKBggqhkjOPQQDAjAyMTAwLgYDVQQDDCdmYWtlLWt1
YmUtYXBpLmludmFsaWQgQ0EgKG5ldmVyIHNlcnZlcykwIBcNMjYwMTAxMDAwMDAw
WhgPMjEyNjAxMDEwMDAwMDBaMDIxMDAuBgNVBAMMJ2Zha2Uta3ViZS1hcGkuaW52
YWxpZCBDQSAobmV2ZXIgc2VydmVzKTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BP83PcqpxbRPhwEJbuo8rARjmmNTVVzjOw64ZsClF7qRMulTWRTh1Q5dC2zBvFMu
1gHsoPdPkPYvj9ZKOlZi51ijEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0E
AwIDRwAwRAIgFYFRyu6wV3LfG0Jdqj6p4mVCp4aTEYvn8w8oaNRVcu4CIHjtvD6U
SjjGzI8AGTesoRBnTrjcRIDf0DEO1uN6D2Cj
-----END CERTIFICATE-----
"""
"""A CA for the fake's clients that no server uses (requests go to the mock transport):
configuring one spares each client loading the system's trust store (tens of ms)."""


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
        self._log = EventLog()
        self._changed = anyio.Event()
        self._faults: list[Fault] = []
        self._holding: list[Fault] = []
        """Hang faults that requests wait on (spent ones too), until healed."""
        self._conditions: dict[str, Conditions] = {}
        self._tokens: dict[str, tuple[str, dict[str, frozenset[str]] | None]] = {}
        self._token_ids = itertools.count(1)
        self._watchers: list[Watcher] = []
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

    def revoke(self, token: str) -> None:
        """Stop accepting `token`: its requests get 401 (a rotated or deleted token)."""
        self._tokens.pop(token, None)

    def client(
        self,
        *,
        namespace: str = "default",
        user: str | None = None,
        verbs: Mapping[str, Collection[str]] | None = None,
    ) -> KubeClient:
        """A `KubeClient` over this API (use it as ``async with``), with its own token."""
        from ..._kube import KubeClient, KubeConfig

        config = KubeConfig(
            server="https://fake-kube-api.invalid",
            namespace=namespace,
            certificate_authority_data=_UNUSED_CA,
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
        kind = KINDS[resource]
        new = copy.deepcopy(dict(obj))
        metadata = object_meta(new)
        namespace = str(metadata.get("namespace") or "default")
        name = str(metadata["name"])
        metadata["namespace"] = namespace
        old = self._objects.get((resource, namespace, name))
        return self._store(kind, namespace, name, new, old)

    def delete_object(self, resource: str, name: str, namespace: str = "default") -> None:
        """Delete the object (a DELETED event is sent); nothing if it is missing."""
        obj = self._objects.pop((resource, namespace, name), None)
        if obj is not None:
            self._record_deletion(KINDS[resource], namespace, name, obj)

    def compact(self) -> None:
        """Forget the history so far: watching from an older version gets 410 Gone."""
        self._compacted = self._revision
        self._log.forget_up_to(self._compacted)

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
            409: "Conflict",
            429: "TooManyRequests",
            500: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
        }.get(status, "InternalError")
        self._faults.append(
            Fault(
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

    def faults_pending(self, user: str | None = None) -> float:
        """How many requests (of `user`, or of anyone) are still to get a fault injected by
        `fail_next()`, `hang_next()` or `stall_next()`; `math.inf` while one has no count
        (`partition()`, `hang_next(None)`). A fault of the next requests is over only once
        they have been made, which can be long after it was injected."""
        return sum(f.count for f in self._faults if user is None or f.user == user)

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
        self._faults.append(Fault(math.inf if count is None else count, verb, resource, user))

    def stall_next(
        self,
        count: int = 1,
        *,
        apply_after: float,
        verb: str | None = None,
        resource: str | None = None,
        user: str | None = None,
    ) -> None:
        """The next `count` matching requests reach the server only `apply_after` seconds
        later, and their senders never get an answer (a stalled apiserver or a congested
        network: the client gives up, yet the write lands later)."""
        self._faults.append(Fault(count, verb, resource, user, apply_after=apply_after))

    def slow_down(self, user: str, seconds: float) -> None:
        """Every request of `user` waits `seconds` before it is served, until `heal()`."""
        self._conditions_of(user).latency = seconds

    def lag_watches(self, user: str, seconds: float) -> None:
        """Watch events reach the streams of `user` `seconds` late, until `heal()`."""
        self._conditions_of(user).watch_lag = seconds
        self._wake()

    def partition(self, user: str) -> None:
        """Cut `user` off until `heal()`: its requests get no answer and its open watch
        streams deliver nothing (not even their end)."""
        self._conditions_of(user).partitioned = True
        self.hang_next(None, user=user)
        self._wake()

    def heal(self, user: str | None = None) -> None:
        """Drop the pending faults and conditions (of `user`, or of everyone) and let hung
        requests go on."""
        for fault in [*self._faults, *self._holding]:
            if user is None or fault.user == user:
                fault.released.set()
        self._faults = [f for f in self._faults if not f.released.is_set()]
        self._holding = [f for f in self._holding if not f.released.is_set()]
        if user is None:
            self._conditions.clear()
        else:
            self._conditions.pop(user, None)
        self._wake()

    def end_watches(self, user: str | None = None) -> None:
        """End every open watch stream (of `user`) normally, as at the server's timeout."""
        self._end_watches("end", user)

    def break_watches(self, user: str | None = None) -> None:
        """Break every open watch stream (of `user`): the client sees a read error."""
        self._end_watches("break", user)

    def expire_watches(self, user: str | None = None) -> None:
        """End every open watch stream (of `user`) with an ``ERROR`` event 410 (too old)."""
        self._end_watches("expire", user)

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current version to every watch that allows them."""
        for w in self._watchers:
            if w.bookmarks:
                w.pending.extend(due_events(w, self._log, self._revision, 0.0)[0])
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
        self._changed = anyio.Event()

    def _forget_watcher(self, w: Watcher) -> None:
        self._watchers = [x for x in self._watchers if x is not w]

    def _end_watches(self, how: str, user: str | None) -> None:
        for w in self._watchers:
            if user is None or w.user == user:
                w.ending = w.ending or how
        self._wake()

    def _conditions_of(self, user: str) -> Conditions:
        found = self._conditions.get(user)
        if found is None:
            found = self._conditions[user] = Conditions()
        return found

    def _current_conditions(self, user: str) -> Conditions:
        return self._conditions.get(user) or _NORMAL

    def _current_changed(self) -> anyio.Event:
        return self._changed

    def _current_revision(self) -> int:
        return self._revision

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _store(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        metadata = object_meta(new)
        metadata["name"] = name
        metadata["namespace"] = namespace
        if old is not None:
            old_meta = object_meta(old)
            for key in ("uid", "creationTimestamp"):
                if key in old_meta:
                    metadata[key] = old_meta[key]
            metadata["resourceVersion"] = old_meta.get("resourceVersion")
            if new == old:
                return copy.deepcopy(old)  # a write that changes nothing keeps the version
        else:
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault(
                "creationTimestamp", self._wall().astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        metadata["resourceVersion"] = self._next_revision()
        self._objects[(kind.resource, namespace, name)] = new
        self._log.append(
            Event(
                self._revision,
                kind.resource,
                namespace,
                name,
                "ADDED" if old is None else "MODIFIED",
                copy.deepcopy(new),
                anyio.current_time(),
            )
        )
        self._wake()
        return copy.deepcopy(new)

    def _record_deletion(self, kind: Kind, namespace: str, name: str, obj: dict[str, Any]) -> None:
        gone = copy.deepcopy(obj)
        object_meta(gone)["resourceVersion"] = self._next_revision()
        self._log.append(
            Event(
                self._revision,
                kind.resource,
                namespace,
                name,
                "DELETED",
                gone,
                anyio.current_time(),
            )
        )
        self._wake()

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        match = PATH.fullmatch(request.url.path)
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
            at=anyio.current_time(),
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
        latency = self.latency + self._current_conditions(record.user).latency
        if latency:
            await anyio.sleep(latency)
        for fault in self._faults:
            if fault.count > 0 and fault.matches(record):
                fault.count -= 1
                if fault.apply_after is not None:
                    self._faults = [f for f in self._faults if f.count > 0]
                    late = functools.partial(self._apply_late, record, profile, fault.apply_after)
                    spawn_detached(late, name="a stalled request served late")
                    await anyio.sleep_forever()
                if fault.status == 0:
                    if fault not in self._holding:
                        self._holding.append(fault)
                    await fault.released.wait()
                    break
                if fault.error is not None:
                    raise fault.error("injected by the fake API", request=request)
                kind = KINDS.get(record.resource)
                if fault.status == 403 and kind is not None:
                    return self._forbidden(kind, record)
                response = status_response(
                    fault.status, fault.reason, f"injected {fault.status} {fault.reason}"
                )
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
                return response
        self._faults = [f for f in self._faults if f.count > 0]
        await anyio.lowlevel.checkpoint()
        return await self._authorized(record, profile)

    async def _apply_late(
        self, record: FakeRequest, profile: Mapping[str, frozenset[str]] | None, after: float
    ) -> None:
        """Serve a stalled request `after` seconds late; its sender hears nothing of it."""
        await anyio.sleep(after)
        if record.verb == "watch":
            return  # nobody would read the stream
        response = await self._authorized(record, profile)
        record.status = response.status_code

    async def _authorized(
        self, record: FakeRequest, profile: Mapping[str, frozenset[str]] | None
    ) -> httpx.Response:
        if record.user == "":
            return status_response(401, "Unauthorized", "Unauthorized")
        kind = KINDS.get(record.resource)
        if kind is None or not record.namespace:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        allowed = self.verbs if profile is None else profile
        if allowed is not None and record.verb not in allowed.get(kind.resource, ()):
            return self._forbidden(kind, record)
        try:
            return await self._serve(kind, record)
        except Reject as reject:
            return reject.response

    def _forbidden(self, kind: Kind, record: FakeRequest) -> httpx.Response:
        target = f'{kind.qualified} "{record.name}"' if record.name else kind.qualified
        message = (
            f'{target} is forbidden: User "{record.user}" cannot {record.verb} resource '
            f'"{kind.resource}" in API group "{kind.group}" in the namespace "{record.namespace}"'
        )
        details = {"kind": kind.resource, **({"group": kind.group} if kind.group else {})}
        if record.name:
            details = {"name": record.name, **details}
        return status_response(403, "Forbidden", message, details)

    def _not_found(self, kind: Kind, name: str) -> Reject:
        return Reject(
            404, "NotFound", f'{kind.qualified} "{name}" not found', object_details(kind, name)
        )

    def _conflict(self, kind: Kind, name: str) -> Reject:
        return Reject(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been '
            f"modified; please apply your changes to the latest version and try again",
            object_details(kind, name),
        )

    async def _serve(self, kind: Kind, record: FakeRequest) -> httpx.Response:
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
                raise Reject(
                    404,
                    "NotFound",
                    f'namespaces "{record.namespace}" not found',
                    {"name": record.namespace, "kind": "namespaces"},
                )
            new = decode(kind, record, record.body)
            metadata = object_meta(new)
            name = metadata.get("name")
            if not isinstance(name, str) or not name:
                raise Reject(
                    422,
                    "Invalid",
                    f"{kind.kind} in version {kind.version!r} is invalid: metadata.name: "
                    f"Required value: name or generateName is required",
                )
            if metadata.get("resourceVersion"):
                raise Reject(
                    500,
                    "InternalError",
                    "resourceVersion should not be set on objects to be created",
                )
            key = (kind.resource, record.namespace, name)
            if key in self._objects:
                raise Reject(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{name}" already exists',
                    object_details(kind, name),
                )
            validate(kind, new, name)
            return httpx.Response(201, json=self._store(kind, record.namespace, name, new, None))
        if record.verb == "update":
            old = self._objects.get(key)
            new = decode(kind, record, record.body)
            if old is None and kind.resource == "endpoints":  # create-on-update
                object_meta(new).pop("resourceVersion", None)
                for key_ in ("uid", "creationTimestamp"):
                    object_meta(new).pop(key_, None)
                validate(kind, new, record.name)
                return httpx.Response(
                    201, json=self._store(kind, record.namespace, record.name, new, None)
                )
            if old is None:
                raise self._not_found(kind, record.name)
            wanted = object_meta(new).get("resourceVersion")
            if not wanted and kind.resource == "leases":
                raise Reject(
                    422,
                    "Invalid",
                    f'{kind.qualified} "{record.name}" is invalid: metadata.resourceVersion: '
                    f"Invalid value: 0: must be specified for an update",
                    object_details(kind, record.name),
                )
            if wanted and wanted != object_meta(old).get("resourceVersion"):
                raise self._conflict(kind, record.name)
            validate(kind, new, record.name)
            return httpx.Response(
                200, json=self._store(kind, record.namespace, record.name, new, old)
            )
        if record.verb == "patch":
            if record.content_type.split(";")[0].strip() != MERGE_PATCH:
                raise Reject(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {MERGE_PATCH} (the fake serves merge patches only)",
                )
            old = self._objects.get(key)
            if old is None:
                raise self._not_found(kind, record.name)
            patch: object = record.body
            if not isinstance(patch, dict):
                raise Reject(400, "BadRequest", "the patch is not a JSON object")
            patched = merge(copy.deepcopy(old), patch)  # pyright: ignore[reportUnknownArgumentType]
            new = decode(kind, record, patched)
            if object_meta(new).get("resourceVersion") != object_meta(old).get("resourceVersion"):
                raise self._conflict(kind, record.name)
            validate(kind, new, record.name)
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
                    "details": {
                        **object_details(kind, record.name),
                        "uid": object_meta(obj).get("uid"),
                    },
                },
            )
        raise Reject(
            405, "MethodNotAllowed", f"the server does not allow this method ({record.method})"
        )

    def _selected(self, record: FakeRequest) -> str | None:
        selector = record.params.get("fieldSelector", "")
        if not selector:
            return None
        field_name, _, value = selector.replace("==", "=").partition("=")
        if field_name != "metadata.name":
            raise Reject(
                400,
                "BadRequest",
                f'unable to parse requirement: field label "{field_name}" not supported '
                f"by the fake",
            )
        return value

    def _watch(self, kind: Kind, record: FakeRequest) -> httpx.Response:
        selected = self._selected(record)
        since = record.params.get("resourceVersion", "")
        timeout = record.params.get("timeoutSeconds")
        deadline = anyio.current_time() + (float(timeout) if timeout else _DEFAULT_WATCH_TIMEOUT)
        bookmarks = record.params.get("allowWatchBookmarks") == "true"
        w = Watcher(kind, record.namespace, selected, bookmarks, self._revision, record.user)
        if since in ("", "0"):
            for (res, ns, nm), obj in sorted(self._objects.items()):
                if res == kind.resource and ns == record.namespace and selected in (None, nm):
                    w.pending.append({"type": "ADDED", "object": copy.deepcopy(obj)})
        else:
            try:
                start = int(since)
            except ValueError:
                raise Reject(400, "BadRequest", f"invalid resource version: {since!r}") from None
            if start < self._compacted:
                message = f"too old resource version: {start} ({self._compacted})"
                if self.gone_as_status:
                    raise Reject(410, "Expired", message)
                w.pending.append({"type": "ERROR", "object": status(410, "Expired", message)})
                w.ending = "end"
            else:
                w.cursor = start
        self._watchers.append(w)
        return httpx.Response(
            200,
            headers={"Content-Type": "application/json"},
            stream=WatchStream(
                w,
                deadline,
                log=self._log,
                revision=self._current_revision,
                conditions=self._current_conditions,
                changed=self._current_changed,
                forget=self._forget_watcher,
            ),
        )
