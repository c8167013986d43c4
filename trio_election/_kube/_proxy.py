"""Which proxy a client's requests go through: the kubeconfig's ``proxy-url``, else the
environment's (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), read as Go's net/http reads
them (client-go's rules)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._errors import KubeConfigError
from ._urls import check_proxy_url, mask_url

if TYPE_CHECKING:
    from ._config import KubeConfig

__all__ = ["choose_proxy", "environment_proxy", "no_proxy_matches", "socks_installed"]


def choose_proxy(config: KubeConfig) -> str | None:
    """The proxy URL for `config`'s server (None: straight to the server), checked.

    Raises `KubeConfigError` for a proxy URL that no proxy could be reached with, and for a
    SOCKS proxy when the ``socks`` extra is not installed."""
    proxy: str | None
    if config.proxy_url is not None:  # the kubeconfig's wins over the environment's
        proxy, origin = config.proxy_url, f"{config.source or 'KubeConfig'}: proxy-url"
    else:
        proxy, origin = environment_proxy(config.server)
    if proxy is None:
        return None
    check_proxy_url(proxy, origin)
    if proxy.startswith("socks") and not socks_installed():
        raise KubeConfigError(
            f"{origin} {mask_url(proxy)} is a SOCKS proxy; "
            f"install the extra: pip install 'trio-election[socks]'"
        )
    return proxy


def environment_proxy(server: str) -> tuple[str | None, str]:
    """The proxy that the environment names for `server`, and the variable that named it.

    As Go's net/http reads them (client-go's rules), upper case first: ``HTTPS_PROXY``,
    then ``ALL_PROXY`` (which httpx reads too), unless ``NO_PROXY`` matches the server."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        proxy = os.environ.get(name)
        if proxy:
            no_proxy = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
            if no_proxy_matches(server, no_proxy):
                return None, ""
            return proxy, f"the environment variable {name}"
    return None, ""


def no_proxy_matches(server: str, no_proxy: str) -> bool:
    """Whether `no_proxy` lists `server`'s host: ``*``; an IP address or a CIDR range; a
    domain, which covers its subdomains too (``.domain``: the subdomains only); each
    optionally with ``:port``."""
    url = urlsplit(server)
    host = (url.hostname or "").lower()
    port = url.port or 443
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            pass
        else:
            if ip is not None and ip in network:
                return True
            continue
        name, entry_port = entry, ""
        if entry.count(":") == 1:  # host:port (an IPv6 address has more colons)
            name, _, entry_port = entry.partition(":")
        if entry_port and entry_port != str(port):
            continue
        name = name.strip("[]")
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def socks_installed() -> bool:
    """Whether httpx can talk to SOCKS proxies (the `socks` extra: `socksio`)."""
    return importlib.util.find_spec("socksio") is not None
