"""Checks of the URLs in a configuration (`server`, `proxy-url`), and hiding their passwords."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from ._errors import KubeConfigError

__all__ = ["PROXY_SCHEMES", "check_proxy_url", "check_server_url", "mask_url"]


def check_server_url(url: str, where: str) -> None:
    """Refuse a server that is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeConfigError(f"{where} must be https://HOST[:PORT][/PATH], got {mask_url(url)!r}")


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
"""The `proxy-url` schemes that can work (client-go's http, https and socks5, and socks5h)."""


def check_proxy_url(url: str, where: str) -> None:
    """Refuse a proxy URL that no proxy could be reached with; never shows its password."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise KubeConfigError(
            f"{where} must be SCHEME://HOST[:PORT] with a scheme among "
            f"{', '.join(PROXY_SCHEMES)}, got {mask_url(url)!r}"
        )


def mask_url(url: str) -> str:
    """`url` with a password in it replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)" if "@" in url else url
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
