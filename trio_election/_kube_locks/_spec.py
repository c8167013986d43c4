"""Lock names as strings: ``"<resource>/<namespace>/<name>"`` or ``"<resource>/<name>"``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._exceptions import ConfigError
from .._kube._client import KubeClient
from ._base import check_name, check_namespace
from ._locks import ConfigMapLock, EndpointsLock, LeaseLock
from ._multi import MultiLock

if TYPE_CHECKING:
    from ._base import KubeLock

__all__ = ["RESOURCES", "check_lock_string", "lock_from_string"]

RESOURCES = ("leases", "endpoints", "configmaps", "endpointsleases", "configmapsleases")
"""The resource names a lock string may start with (client-go's names)."""

_SINGLE: dict[str, type[KubeLock]] = {
    "leases": LeaseLock,
    "endpoints": EndpointsLock,
    "configmaps": ConfigMapLock,
}
_MULTI: dict[str, type[KubeLock]] = {
    "endpointsleases": EndpointsLock,
    "configmapsleases": ConfigMapLock,
}


def check_lock_string(spec: object) -> tuple[str, str | None, str]:
    """The resource, namespace (None: the client's) and name of a lock string.

    Checks everything that can be checked without a Kubernetes client: the form, the
    resource and the names. Raises `ConfigError` naming the string and the allowed forms.
    """
    if not isinstance(spec, str):
        raise _bad(spec, "a lock string must be a str")
    parts = spec.split("/")
    namespace: str | None
    if len(parts) == 2:
        resource, name = parts
        namespace = None
    elif len(parts) == 3:
        resource, namespace, name = parts
    else:
        raise _bad(spec, "expected two or three parts separated by '/'")
    if resource not in _SINGLE and resource not in _MULTI:
        raise _bad(spec, f"unknown resource {resource!r}")
    try:
        if namespace is not None:
            check_namespace(namespace)
        check_name(name)
    except ConfigError as exc:
        raise _bad(spec, str(exc)) from None
    return resource, namespace, name


def lock_from_string(
    spec: str, client: KubeClient | None = None
) -> LeaseLock | EndpointsLock | ConfigMapLock | MultiLock:
    """The lock named by `spec`, bound to `client`.

    `spec` is ``"<resource>/<namespace>/<name>"``, or ``"<resource>/<name>"`` for the
    client's namespace; `<resource>` is one of ``leases``, ``endpoints``, ``configmaps``,
    ``endpointsleases`` and ``configmapsleases`` (the last two are `MultiLock` of an
    Endpoints or ConfigMap and a Lease of the same name). Raises `ConfigError` naming the
    string and the allowed forms (checked first), and `TypeError` when `client` is missing
    or is not a `KubeClient`.
    """
    resource, namespace, name = check_lock_string(spec)
    if not isinstance(client, KubeClient):
        raise TypeError(
            f"lock_from_string({spec!r}, client) needs client=, a trio_election.kube.KubeClient "
            f"(e.g. KubeClient(KubeConfig.load())); got {client!r}. To let elect() or "
            f"open_election() open the client, give them the string itself"
        )
    if namespace is None:
        namespace = client.namespace
    try:
        if resource in _SINGLE:
            lock = _SINGLE[resource](namespace, name, client)
            assert isinstance(lock, LeaseLock | EndpointsLock | ConfigMapLock)
            return lock
        return MultiLock(
            _MULTI[resource](namespace, name, client), LeaseLock(namespace, name, client)
        )
    except ConfigError as exc:
        raise _bad(spec, str(exc)) from None


def _bad(spec: object, why: str) -> ConfigError:
    return ConfigError(
        f"invalid lock {spec!r}: {why}; expected '<resource>/<namespace>/<name>' or "
        f"'<resource>/<name>' (the client's namespace), where <resource> is one of "
        f"{', '.join(RESOURCES)}"
    )
