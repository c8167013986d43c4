"""`KubeConfig`: where the API server is and how to authenticate, resolved as client-go does.

This module sits above `._kubeconfig` (which reads the files into the fields of a
configuration) and builds the instances itself: nothing below imports it.

Order (`KubeConfig.load()`): an explicit kubeconfig path, else `$KUBECONFIG` (a list of
files, merged: the first file to set a map key or `current-context` wins), else the pod's
service account when running in a pod, else `~/.kube/config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import final

from ._errors import KubeConfigError, NoConfigFound
from ._kubeconfig import ExecConfig, from_files
from ._tls import check_certificates, check_pem
from ._urls import mask_url

__all__ = ["SERVICE_ACCOUNT_DIR", "SERVICE_ACCOUNT_DIR_ENV", "ExecConfig", "KubeConfig"]


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where a pod's service-account token, CA and namespace are mounted."""

SERVICE_ACCOUNT_DIR_ENV = "TRIO_ELECTION_SERVICE_ACCOUNT_DIR"
"""Overrides `SERVICE_ACCOUNT_DIR` (for tests of the in-cluster path)."""


def _mask(value: object) -> str:
    return "None" if value is None else "'***'"


@final
@dataclass(frozen=True, slots=True)
class KubeConfig:
    """How to reach one Kubernetes API server. Secrets never show in `repr()`.

    Build one directly (`KubeConfig(server="https://...", token="...")`) or with
    `KubeConfig.load()`. PEM data is held as bytes; `token_file` is re-read while in use.
    """

    server: str
    namespace: str = "default"
    certificate_authority_data: bytes | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    client_certificate_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    exec: ExecConfig | None = None
    source: str = ""
    """Where this came from (a kubeconfig path and context, or "in-cluster"), for errors."""
    certificate_authority_source: str = ""
    """Where the CA that verifies the server came from (the kubeconfig file, cluster and
    field, the in-cluster ``ca.crt``, or the system trust store), for errors; empty when
    this configuration was built directly."""

    def __repr__(self) -> str:
        return (
            f"KubeConfig(server={self.server!r}, namespace={self.namespace!r}, "
            f"insecure_skip_tls_verify={self.insecure_skip_tls_verify!r}, "
            f"tls_server_name={self.tls_server_name!r}, "
            f"proxy_url={None if self.proxy_url is None else mask_url(self.proxy_url)!r}, "
            f"token={_mask(self.token)}, token_file={self.token_file!r}, "
            f"client_key_data={_mask(self.client_key_data)}, username={self.username!r}, "
            f"password={_mask(self.password)}, exec={self.exec!r}, source={self.source!r})"
        )

    @classmethod
    def load(
        cls, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
    ) -> KubeConfig:
        """Resolve the configuration as client-go does; raise `KubeConfigError` if none.

        An explicit `kubeconfig` path, else `$KUBECONFIG`, else the pod's service account
        (`in_cluster()`) when in a pod, else `~/.kube/config`. `context` picks a context by
        name instead of `current-context` (kubeconfig files only). Reads files: a blocking
        call, and a cheap one.
        """
        if kubeconfig is not None:
            return cls(**from_files([Path(kubeconfig)], context, explicit=True))
        env = os.environ.get("KUBECONFIG", "")
        paths = [Path(p) for p in env.split(os.pathsep) if p]
        if paths:
            existing = [p for p in paths if p.exists()]
            if not existing:
                raise KubeConfigError(
                    f"$KUBECONFIG names no file that exists ({env}): fix the variable or unset it"
                )
            return cls(**from_files(existing, context, explicit=False))
        if _in_pod():
            return cls.in_cluster()
        home = Path.home() / ".kube" / "config"
        if home.exists():
            return cls(**from_files([home], context, explicit=False))
        raise NoConfigFound(
            "no Kubernetes configuration found: not running in a pod "
            "(KUBERNETES_SERVICE_HOST is not set) and no kubeconfig (~/.kube/config does not "
            "exist and $KUBECONFIG is not set)",
            "set KUBECONFIG=PATH, or give the path: KubeConfig.load(PATH)",
        )

    @classmethod
    def in_cluster(cls, service_account_dir: str | os.PathLike[str] | None = None) -> KubeConfig:
        """The pod's service account: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
        with the token (re-read while in use), CA and namespace mounted in
        `service_account_dir` (default `$TRIO_ELECTION_SERVICE_ACCOUNT_DIR`, else
        `/var/run/secrets/kubernetes.io/serviceaccount`). The namespace is `$POD_NAMESPACE`
        when set, else the mounted one, else "default". Raises `KubeConfigError` outside a
        pod or without a token."""
        folder = (
            Path(service_account_dir) if service_account_dir is not None else _service_account_dir()
        )
        return _in_cluster(folder)


def _service_account_dir() -> Path:
    return Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)


def _in_pod() -> bool:
    return bool(
        os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT")
    )


def _in_cluster(folder: Path) -> KubeConfig:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must "
            "both be set for the in-cluster configuration"
        )
    token_file = folder / "token"
    if not token_file.is_file():
        raise KubeConfigError(
            f"in-cluster configuration: the service-account token {token_file} does not "
            f"exist; mount a service account (automountServiceAccountToken: true)"
        )
    ca = (
        _read(folder / "ca.crt", "in-cluster CA (ca.crt)") if (folder / "ca.crt").exists() else None
    )
    namespace_file = folder / "namespace"
    # as client-go's in-cluster config: $POD_NAMESPACE (the downward API) first
    namespace = os.environ.get("POD_NAMESPACE") or (
        _text(namespace_file, "in-cluster namespace") if namespace_file.exists() else "default"
    )
    if ca is not None:
        where = f"in-cluster CA {folder / 'ca.crt'}"
        check_pem(ca, where, "CERTIFICATE")
        check_certificates(ca=ca, cert=None, key=None, ca_where=where, cert_where="", key_where="")
    server_host = f"[{host}]" if ":" in host else host
    return KubeConfig(
        server=f"https://{server_host}:{port}",
        namespace=namespace or "default",
        certificate_authority_data=ca,
        token_file=token_file,
        source="in-cluster",
        certificate_authority_source=(
            f"the in-cluster CA {folder / 'ca.crt'}"
            if ca is not None
            else f"the system trust store (there is no {folder / 'ca.crt'})"
        ),
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KubeConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _text(path: Path, what: str) -> str:
    try:
        return _read(path, what).decode().strip()
    except UnicodeDecodeError:
        raise KubeConfigError(f"{what} {path} is not UTF-8 text") from None
