"""Certificates for a test control plane: a serving CA, a client CA, a service-account key.

`trustme` (and the `cryptography` it is built on) are imported only here, and only when a
control plane starts, so that the library proper does not depend on them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import trustme

__all__ = ["Pki"]

SERVER_NAMES = ("127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc")
"""What the serving certificate is valid for (also usable as `tls-server-name`)."""


@final
@dataclass(frozen=True, slots=True)
class Pki:
    """The files the apiserver is started with, and the CAs to issue more from."""

    ca_file: Path
    ca_pem: bytes
    serving_cert: Path
    serving_key: Path
    client_ca_file: Path
    service_account_key: Path
    _client_ca: trustme.CA

    @classmethod
    def create(cls, folder: Path) -> Pki:
        """Write a fresh serving CA, serving certificate, client CA and SA key into folder."""
        import trustme

        folder.mkdir(parents=True, exist_ok=True)
        server_ca = trustme.CA(organization_name="trio-election test control plane")
        serving = server_ca.issue_cert(*SERVER_NAMES, common_name="kube-apiserver")
        client_ca = trustme.CA(organization_name="trio-election test clients")
        # an extra CA only for its key: the apiserver signs service-account tokens with it
        signer = trustme.CA(organization_name="trio-election service accounts")

        ca_pem = server_ca.cert_pem.bytes()
        pki = cls(
            ca_file=folder / "ca.crt",
            ca_pem=ca_pem,
            serving_cert=folder / "apiserver.crt",
            serving_key=folder / "apiserver.key",
            client_ca_file=folder / "client-ca.crt",
            service_account_key=folder / "sa.key",
            _client_ca=client_ca,
        )
        pki.ca_file.write_bytes(ca_pem)
        pki.serving_cert.write_bytes(b"".join(blob.bytes() for blob in serving.cert_chain_pems))
        pki.serving_key.write_bytes(serving.private_key_pem.bytes())
        pki.client_ca_file.write_bytes(client_ca.cert_pem.bytes())
        pki.service_account_key.write_bytes(signer.private_key_pem.bytes())
        for secret in (pki.serving_key, pki.service_account_key):
            secret.chmod(0o600)
        return pki

    def issue_client_cert(
        self, folder: Path, name: str, groups: Sequence[str]
    ) -> tuple[Path, Path]:
        """A client certificate and key (PEM files) with CN = name and one O per group.

        Built with `cryptography` directly: trustme always adds an O of its own, which the
        apiserver would read as one more group.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca_key = serialization.load_pem_private_key(
            self._client_ca.private_key_pem.bytes(), password=None
        )
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):  # trustme's default key type
            raise TypeError(f"unexpected client CA key type {type(ca_key).__name__}")
        ca_cert = x509.load_pem_x509_certificate(self._client_ca.cert_pem.bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "user"
        cert_file = folder / f"{stem}.crt"
        key_file = folder / f"{stem}.key"
        for n in range(1, 1000):
            if not cert_file.exists():
                break
            cert_file, key_file = folder / f"{stem}-{n}.crt", folder / f"{stem}-{n}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return cert_file, key_file
