"""What a request that got no answer raises, and why it failed, in words that say what to fix.

httpx wraps the cause of a failure in its own exceptions, often with an empty message (a TLS
failure) or a vague one ("all attempts to connect ... failed"). `connection_error` walks the
chain for the innermost reason; a server certificate that verification refused is a
`TLSVerificationError` (retrying cannot cure it) that names where the CA came from and what
to change, else the failure is an `ApiConnectionError`.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ._errors import ApiConnectionError, TLSVerificationError
from ._urls import mask_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._config import KubeConfig

__all__ = ["connection_error", "tls_verification_error"]


def connection_error(
    config: KubeConfig, exc: BaseException, *, answered: bool = True
) -> ApiConnectionError | TLSVerificationError:
    """What a failed request to `config`'s server raises: `TLSVerificationError` when the
    server's certificate was refused (httpx raises `ConnectError` with the
    `ssl.SSLCertVerificationError` in its chain), else `ApiConnectionError` with the
    innermost reason. When the server has never `answered` this client, the message says
    so and where its address came from: a mistyped address looks like an outage otherwise."""
    refused = _find_verification_error(exc)
    if refused is not None:
        return tls_verification_error(config, refused)
    kind = type(exc).__name__
    detail = _reason(exc) or kind
    message = f"cannot talk to {config.server}: {kind}: {detail}"
    if not answered:
        named = f" (the server is named by {config.source})" if config.source else ""
        message += (
            f"; it has not answered once since this client started: check the address and "
            f"port{named}, and that the API server runs"
        )
    return ApiConnectionError(message)


# OpenSSL's X509_V_ERR_* codes (`SSLCertVerificationError.verify_code`) that call for
# something else than another CA
_NAME_MISMATCH = frozenset({62, 63, 64})  # HOSTNAME_, EMAIL_, IP_ADDRESS_MISMATCH
_OUT_OF_DATE = frozenset({9, 10})  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED

_USUAL_NAME = "an API server's certificate usually lists kubernetes.default.svc"


def tls_verification_error(
    config: KubeConfig, error: ssl.SSLCertVerificationError
) -> TLSVerificationError:
    """The error for a server certificate that `config` refuses, saying what to fix."""
    reason = (error.verify_message or error.reason or str(error)).rstrip(".")
    if config.certificate_authority_source:
        ca = config.certificate_authority_source
    elif config.certificate_authority_data is not None:
        ca = "certificate_authority_data given to KubeConfig"
    else:
        ca = "the system trust store (no certificate authority given to KubeConfig)"
    trusts_system = config.certificate_authority_data is None
    facts = [f"CA: {ca}"]
    if config.source:
        facts.append(f"configuration: {config.source}")
    if config.tls_server_name:
        facts.append(f"tls-server-name: {config.tls_server_name}")
    if config.proxy_url:
        facts.append(f"proxy-url: {mask_url(config.proxy_url)}")
    if error.verify_code in _NAME_MISMATCH:
        if config.tls_server_name:
            fix = (
                f"The certificate does not list tls-server-name {config.tls_server_name}: set "
                f"tls-server-name to a name it lists ({_USUAL_NAME})"
            )
        else:
            host = urlsplit(config.server).hostname
            fix = (
                f"The certificate does not list {host}: use a name it lists in server, or "
                f"set tls-server-name to one ({_USUAL_NAME})"
            )
    elif error.verify_code in _OUT_OF_DATE:
        fix = "Renew the API server's certificate, or correct this machine's clock"
    elif trusts_system:
        fix = (
            "No certificate authority is configured and the system trust store does not "
            "trust the server's certificate: set certificate-authority (a PEM file) or "
            "certificate-authority-data (base64 PEM) in the cluster's entry to the CA that "
            "signed the API server's certificate"
        )
    else:
        fix = (
            "That CA did not sign the server's certificate: configure the CA that signed the "
            "API server's certificate (the cluster's certificate-authority or "
            "certificate-authority-data; in a pod, the service account's ca.crt), and check "
            "that server points at the right cluster"
        )
    if config.proxy_url and config.proxy_url.startswith("https:"):
        fix += "; proxy-url is https, so the refused certificate may be the proxy's"
    return TLSVerificationError(
        f"TLS verification of the API server {config.server} failed: {reason}. "
        f"{'; '.join(facts)}. {fix}"
    )


def _find_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return link
    return None


def _reason(exc: BaseException) -> str:
    """The innermost reason in an exception chain: httpx's own message is often empty (a
    TLS failure) or vague ("all attempts to connect ... failed")."""
    reason = ""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError):
            return f"TLS failed: {link.reason or link}"
        reason = str(link) or reason
    return reason


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it came from, outermost first (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = _inner(current)


def _inner(exc: BaseException) -> BaseException | None:
    """What `exc` came from: its cause, its context or, for a group, its first member."""
    if isinstance(exc, BaseExceptionGroup):
        members: tuple[BaseException, ...] = cast("Any", exc).exceptions
        if members:
            return members[0]
    return exc.__cause__ or exc.__context__
