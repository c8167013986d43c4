"""One `ssl.SSLContext` per client, from the kubeconfig's CA and client certificate."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile

from ._errors import KubeConfigError

__all__ = ["ssl_context"]

logger = logging.getLogger("trio_election.kube")


def ssl_context(
    *,
    ca: bytes | None,
    insecure: bool,
    cert: bytes | None,
    key: bytes | None,
    where: str,
) -> ssl.SSLContext:
    """Verification on (the system CAs, or `ca`) unless `insecure`; client cert if given."""
    if insecure:
        logger.warning(
            "TLS verification is off for %s (insecure-skip-tls-verify): the server's "
            "identity is not checked",
            where,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        try:
            context = ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError):
            raise KubeConfigError(
                f"{where}: the certificate authority does not parse as a PEM certificate"
            ) from None
    else:
        context = ssl.create_default_context()
    if cert is not None and key is not None:
        _load_client_certificate(context, cert, key, where)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes, where: str) -> None:
    # load_cert_chain reads files only: write both to a private file, load, remove
    fd, path = tempfile.mkstemp(prefix="trio-election-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(cert.rstrip(b"\n") + b"\n" + key)
        try:
            context.load_cert_chain(path)
        except (ssl.SSLError, ValueError):
            raise KubeConfigError(
                f"{where}: the client certificate and key do not parse or do not match"
            ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
