"""One `ssl.SSLContext` per client, from the kubeconfig's CA and client certificate."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from typing import TYPE_CHECKING

from ._errors import KubeConfigError

if TYPE_CHECKING:
    import socket

__all__ = ["check_certificates", "check_pem", "ssl_context"]

logger = logging.getLogger("trio_election.kube")


class _ServerNameContext(ssl.SSLContext):
    """Sends `server_name` as SNI and checks the server's certificate against it, whatever
    host the connection goes to (`tls-server-name`). Done here rather than with httpx's
    `sni_hostname` extension, which is not honoured through an HTTP proxy tunnel."""

    server_name: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        del server_hostname
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        del server_hostname
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.server_name,
            session,
        )


def _new_context(server_name: str | None) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT: CERT_REQUIRED and check_hostname, as create_default_context()
    if server_name is None:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    return context


def ssl_context(
    *,
    ca: bytes | None,
    insecure: bool,
    cert: bytes | None,
    key: bytes | None,
    where: str,
    server_name: str | None = None,
) -> ssl.SSLContext:
    """Verification on (the system CAs, or `ca`) unless `insecure`; client cert if given;
    `server_name` (`tls-server-name`) instead of the server's host for SNI and checking."""
    if insecure and ca is not None:
        raise KubeConfigError(
            f"{where}: insecure-skip-tls-verify is on and a certificate authority is given "
            f"(kubectl refuses this too); remove one of them"
        )
    context = _new_context(server_name)
    if insecure:
        logger.warning(
            "TLS verification is off for %s (insecure-skip-tls-verify): the server's "
            "identity is not checked",
            where,
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        _load_ca(context, ca, where)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None and key is not None:
        _load_client_certificate(context, cert, key, where, where)
    return context


def check_certificates(
    *,
    ca: bytes | None,
    cert: bytes | None,
    key: bytes | None,
    ca_where: str,
    cert_where: str,
    key_where: str,
) -> None:
    """Parse a CA and a client certificate and key as `ssl_context` will, so that a
    configuration is refused when it is loaded, naming the field that is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        _load_ca(context, ca, ca_where)
    if cert is not None and key is not None:
        _load_client_certificate(context, cert, key, cert_where, key_where)


def _load_ca(context: ssl.SSLContext, ca: bytes, where: str) -> None:
    try:
        context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        raise KubeConfigError(
            f"{where}: the certificate authority does not parse as a PEM certificate"
        ) from None


class _Encrypted(Exception):
    """The key asks for a passphrase (raised by the password callback)."""


def _no_passphrase() -> bytes:
    # without a callback OpenSSL would prompt on the terminal, blocking the event loop
    raise _Encrypted


def _load_client_certificate(
    context: ssl.SSLContext, cert: bytes, key: bytes, cert_where: str, key_where: str
) -> None:
    try:  # the certificate alone first, so that an error can say which of the two is wrong
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=cert.decode("ascii", "replace")
        )
    except (ssl.SSLError, ValueError):
        raise KubeConfigError(
            f"{cert_where}: the client certificate does not parse as a PEM certificate"
        ) from None
    # load_cert_chain reads files only: write both to a private file, load, remove
    fd, path = tempfile.mkstemp(prefix="trio-election-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(cert.rstrip(b"\n") + b"\n" + key)
        try:
            context.load_cert_chain(path, password=_no_passphrase)
        except _Encrypted:
            raise KubeConfigError(
                f"{key_where}: the client key is encrypted with a passphrase, which is not "
                f"supported; keep it unencrypted (openssl pkey -in KEY -out PLAIN) in a file "
                f"only this user can read"
            ) from None
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise KubeConfigError(
                    f"{key_where}: the client certificate and key do not match (the key "
                    f"belongs to another certificate)"
                ) from None
            raise KubeConfigError(
                f"{key_where}: the client key does not parse as a PEM private key"
            ) from None
        except ValueError:
            raise KubeConfigError(
                f"{key_where}: the client key does not parse as a PEM private key"
            ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def check_pem(data: bytes, where: str, kind: str) -> None:
    """Refuse data without a PEM block of `kind` (CERTIFICATE, PRIVATE KEY)."""
    if b"-----BEGIN" not in data or kind.encode() not in data:
        raise KubeConfigError(
            f"{where}: the {kind.lower()} does not parse as PEM (expected a "
            f"'-----BEGIN ...{kind}-----' block)"
        )
