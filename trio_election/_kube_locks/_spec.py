"""Lock names as strings: ``"<resource>/<namespace>/<name>"`` or ``"<resource>/<name>"``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._exceptions import ConfigError
from ._locks import ConfigMapLock, EndpointsLock, LeaseLock
from ._multi import MultiLock

if TYPE_CHECKING:
    from .._kube import KubeClient
    from ._base import KubeLock

__all__ = ["RESOURCES", "lock_from_string"]

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


def lock_from_string(
    spec: str, client: KubeClient
) -> LeaseLock | EndpointsLock | ConfigMapLock | MultiLock:
    """The lock named by `spec`, bound to `client`.

    `spec` is ``"<resource>/<namespace>/<name>"``, or ``"<resource>/<name>"`` for the
    client's namespace; `<resource>` is one of ``leases``, ``endpoints``, ``configmaps``,
    ``endpointsleases`` and ``configmapsleases`` (the last two are `MultiLock` of an
    Endpoints or ConfigMap and a Lease of the same name). Raises `ConfigError` naming the
    string and the allowed forms.
    """
    parts = spec.split("/") if isinstance(spec, str) else []  # pyright: ignore[reportUnnecessaryIsInstance]
    if len(parts) == 2:
        resource, name = parts
        namespace = client.namespace
    elif len(parts) == 3:
        resource, namespace, name = parts
    else:
        raise _bad(spec, "expected two or three parts separated by '/'")
    try:
        if resource in _SINGLE:
            lock = _SINGLE[resource](namespace, name, client)
            assert isinstance(lock, LeaseLock | EndpointsLock | ConfigMapLock)
            return lock
        if resource in _MULTI:
            return MultiLock(
                _MULTI[resource](namespace, name, client), LeaseLock(namespace, name, client)
            )
    except ConfigError as exc:
        raise _bad(spec, str(exc)) from None
    raise _bad(spec, f"unknown resource {resource!r}")


def _bad(spec: object, why: str) -> ConfigError:
    return ConfigError(
        f"invalid lock {spec!r}: {why}; expected '<resource>/<namespace>/<name>' or "
        f"'<resource>/<name>' (the client's namespace), where <resource> is one of "
        f"{', '.join(RESOURCES)}"
    )
