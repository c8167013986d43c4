"""Writing kubeconfig files, as YAML (the form people and tools keep them in)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["write_kubeconfig"]


def _scalar(value: str) -> str:
    # a JSON string is a valid YAML double-quoted scalar
    return json.dumps(value)


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    token: str | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a one-cluster, one-user, one-context kubeconfig and return its path."""
    cluster = "trio-election-test"
    context = f"{user}@{cluster}"
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {_scalar(cluster)}",
        "  cluster:",
        f"    server: {_scalar(server)}",
        f"    certificate-authority-data: {base64.b64encode(ca_pem).decode()}",
        "users:",
        f"- name: {_scalar(user)}",
        "  user:",
    ]
    if token is not None:
        lines.append(f"    token: {_scalar(token)}")
    if client_cert is not None and client_key is not None:
        lines += [
            f"    client-certificate: {_scalar(str(client_cert))}",
            f"    client-key: {_scalar(str(client_key))}",
        ]
    lines += [
        "contexts:",
        f"- name: {_scalar(context)}",
        "  context:",
        f"    cluster: {_scalar(cluster)}",
        f"    user: {_scalar(user)}",
    ]
    if namespace is not None:
        lines.append(f"    namespace: {_scalar(namespace)}")
    lines += [f"current-context: {_scalar(context)}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path
