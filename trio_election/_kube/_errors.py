"""Errors of the Kubernetes access layer, built from the API's `Status` bodies.

The tree is drawn in `trio_election.kube`'s docstring. No message ever contains a token, a
password, a key or an exec plugin's output.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .._core._exceptions import ConfigError, ElectionError
from ._json import as_mapping

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = [
    "AlreadyExistsError",
    "ApiConnectionError",
    "ApiError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "KubeConfigError",
    "NoConfigFound",
    "NotFoundError",
    "ServerError",
    "TLSVerificationError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "error_from_response",
    "error_from_status",
]


class KubeConfigError(ConfigError):
    """The Kubernetes configuration cannot work; the message names the file, field and fix."""


class NoConfigFound(KubeConfigError):
    """No configuration in any place client-go looks. `where` says where it looked; the
    message adds how to give one, in the terms of the caller (a parameter, a flag)."""

    def __init__(self, where: str, hint: str) -> None:
        super().__init__(f"{where}; {hint}")
        self.where = where
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.hint))


class TLSVerificationError(KubeConfigError):
    """The API server's TLS certificate failed verification.

    Its issuer is not the configured certificate authority (or, with none configured, not
    in the system trust store), it does not list the server's host (or `tls-server-name`),
    or it has expired. Retrying cannot cure it, so it is raised from the first request,
    and the message names the server, where the CA came from, `tls-server-name` if set,
    the reason, and what to fix.
    """


class ApiConnectionError(ElectionError):
    """The API server could not be reached (refused, reset, timed out, a proxy failure), or
    the TLS handshake failed for a reason other than the server's certificate (that one is
    `TLSVerificationError`)."""


class ApiError(ElectionError):
    """The Kubernetes API answered with an error status."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        verb: str | None = None,
        resource: str | None = None,
        hint: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.verb = verb
        self.resource = resource
        self.hint = hint
        text = f"{status} {reason}: {message}"
        super().__init__(f"{text}. {hint}" if hint else text)

    def __reduce__(self) -> tuple[Any, ...]:
        # the arguments are not the message (`args`): rebuild from the fields, so that an
        # error pickles (to another process) with its class and everything it says
        rebuild = functools.partial(
            type(self), verb=self.verb, resource=self.resource, hint=self.hint
        )
        return (rebuild, (self.status, self.reason, self.message), self.__dict__)


class NotFoundError(ApiError):
    """404: the object (or its namespace) does not exist."""


class ConflictError(ApiError):
    """409: the object was modified since it was read."""


class AlreadyExistsError(ConflictError):
    """409 on create: the object already exists."""


class GoneError(ApiError):
    """410: the requested resourceVersion is too old (re-list, then watch again)."""


class UnauthorizedError(ApiError):
    """401: the server refused the credentials."""


class ForbiddenError(ApiError):
    """403: RBAC does not allow this verb on this resource; the message says what to grant."""


class InvalidError(ApiError):
    """422: the object is invalid."""


class TooManyRequestsError(ApiError):
    """429: the server asks to slow down; `retry_after` is its Retry-After in seconds."""

    retry_after: float | None = None


class ServerError(ApiError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}

_VERB_OF_METHOD = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}

_FORBIDDEN = re.compile(r'cannot ([\w]+) resource "([^"]+)"')
_FORBIDDEN_GROUP = re.compile(r'in API group "([^"]*)"')
_FORBIDDEN_NAMESPACE = re.compile(r'in the namespace "([^"]*)"')


@dataclass(frozen=True, slots=True)
class _Target:
    """What a request path addresses: `/api/v1/...` or `/apis/<group>/<version>/...`, then
    `[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`."""

    group: str = ""
    namespace: str | None = None
    resource: str | None = None  # with its subresource, as RBAC names it: "pods/log"
    name: str | None = None


def _target(path: str) -> _Target:
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return _Target()
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":  # a namespaced resource
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return _Target(group=group, namespace=namespace)
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    return _Target(group, namespace, resource, rest[1] if len(rest) >= 2 else None)


def _verb(method: str, params: Mapping[str, str] | None, target: _Target) -> str:
    if (params or {}).get("watch") in ("1", "true"):
        return "watch"
    if method == "GET" and target.name is None:
        return "list"
    if method == "DELETE" and target.name is None:
        return "deletecollection"
    return _VERB_OF_METHOD.get(method, method.lower())


def _rbac_hint(verb: str, resource: str, group: str, namespace: str | None) -> str:
    rule = f'{{apiGroups: ["{group}"], resources: ["{resource}"], verbs: ["{verb}"]}}'
    where = (
        f'to a Role in namespace "{namespace}" and bind it (RoleBinding)'
        if namespace
        else "to a ClusterRole and bind it (ClusterRoleBinding)"
    )
    return (
        f'Grant the "{verb}" verb on "{resource}": add the rule {rule} {where} to this user '
        f"or service account"
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def error_from_response(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    retry_after: str | None = None,
    secrets: Collection[str] = (),
) -> ApiError:
    """The typed error for an error response, from its `Status` body when it has one.

    Any of `secrets` (the credentials sent) found in the body is masked: a proxy or a
    debugging endpoint may echo the request back."""
    try:
        status_body = as_mapping(json.loads(body))
    except ValueError:
        status_body = None
    if status_body is None or status_body.get("kind") != "Status":
        status_body = {}
    text = body.decode("utf-8", "replace").strip()
    return _error(
        status,
        status_body,
        text,
        method=method,
        path=path,
        params=params,
        retry_after=retry_after,
        secrets=secrets,
    )


def error_from_status(
    status_body: Mapping[str, Any],
    *,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> ApiError:
    """The typed error for a `Status` object that came without a response of its status:
    a watch's ``ERROR`` event. Its ``code`` chooses the class (one that is not an error
    status reads as 500, a server failure); `secrets` are masked as in
    `error_from_response`."""
    code = status_body.get("code")
    status = code if type(code) is int and 400 <= code <= 599 else 500
    text = json.dumps(status_body, separators=(",", ":"))
    return _error(
        status, status_body, text, method=method, path=path, params=params, secrets=secrets
    )


def _error(
    status: int,
    status_body: Mapping[str, Any],
    text: str,
    *,
    method: str,
    path: str,
    params: Mapping[str, str] | None,
    retry_after: str | None = None,
    secrets: Collection[str],
) -> ApiError:
    """The error of `status`, told by its `Status` (empty when there is none) or, when that
    has no message, by the answer's `text`."""
    reason = str(status_body.get("reason") or "")
    message = str(status_body.get("message") or "")
    details = as_mapping(status_body.get("details")) or {}
    if not message:
        message = text[:300] if text else "(no message)"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    if cls is ConflictError and reason == "AlreadyExists":
        cls = AlreadyExistsError
    target = _target(path)
    verb = _verb(method, params, target)
    resource = target.resource or (str(details["kind"]) if "kind" in details else None)
    hint = ""
    if cls is ForbiddenError:
        # the apiserver's own words are exact (the verb it checked, e.g. "watch"); the
        # request is the fallback when the body is not a Status
        group, namespace = target.group, target.namespace
        if match := _FORBIDDEN.search(message):
            verb, resource = match.group(1), match.group(2)
            if group_match := _FORBIDDEN_GROUP.search(message):
                group = group_match.group(1)
            namespace_match = _FORBIDDEN_NAMESPACE.search(message)
            namespace = namespace_match.group(1) if namespace_match else None
        if resource:
            hint = _rbac_hint(verb, resource, group, namespace)
    elif cls is UnauthorizedError:
        hint = "The credentials were refused: check the token, certificate or exec plugin"
    error = cls(
        status,
        reason or _default_reason(status),
        message,
        verb=verb,
        resource=resource,
        hint=hint,
    )
    if isinstance(error, TooManyRequestsError):
        error.retry_after = _retry_after(retry_after)
    return error


def _default_reason(status: int) -> str:
    """The apiserver's `reason` for `status`, for bodies that are not a Status (a proxy's)."""
    known = {
        409: "Conflict",
        410: "Gone",
        422: "Invalid",
        500: "InternalError",
        504: "Timeout",
    }
    if status in known:
        return known[status]
    try:  # NotFound, TooManyRequests, ServiceUnavailable, BadGateway, ... as Kubernetes spells
        return re.sub(r"[^A-Za-z]", "", HTTPStatus(status).phrase.title())
    except ValueError:
        return "InternalError" if status >= 500 else "Error"
