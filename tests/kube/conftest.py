"""Fixtures for the Kubernetes access layer: certificates, kubeconfig files, exec plugins.

Every test starts from a clean environment: no `$KUBECONFIG`, not in a pod, a `$HOME` without
`.kube/config`, and a service-account folder that does not exist.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trustme
import yaml

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "POD_NAMESPACE",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TRIO_ELECTION_SERVICE_ACCOUNT_DIR", str(tmp_path / "no-such-sa"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1, one for another name only, a client cert."""

    ca: trustme.CA
    other_ca: trustme.CA
    server: trustme.LeafCert
    named_server: trustme.LeafCert
    client: trustme.LeafCert

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    @property
    def client_cert_pem(self) -> bytes:
        return self.client.cert_chain_pems[0].bytes()

    @property
    def client_key_pem(self) -> bytes:
        return self.client.private_key_pem.bytes()


SERVER_NAME = "api.cluster.internal"
"""The only name in `Pki.named_server`'s certificate (for `tls-server-name`)."""


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = trustme.CA()
    return Pki(
        ca=ca,
        other_ca=trustme.CA(),
        server=ca.issue_cert("127.0.0.1", "localhost"),
        named_server=ca.issue_cert(SERVER_NAME),
        client=ca.issue_cert("alice@example.org", common_name="alice"),
    )


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def kubeconfig(
    path: Path,
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    namespace: str | None = None,
    name: str = "main",
    current: str | None = "main",
) -> Path:
    """Write a one-context kubeconfig: cluster, user and context all called `name`."""
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace is not None:
        context["namespace"] = namespace
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": name, "user": user or {}}],
        "contexts": [{"name": name, "context": context}],
    }
    if current is not None:
        data["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass(frozen=True, slots=True)
class Plugin:
    """An exec credential plugin written by a test; it records each run in `log`."""

    path: Path
    log: Path

    def runs(self) -> list[dict[str, Any]]:
        """One entry per run: its argv, `KUBERNETES_EXEC_INFO` (decoded) and chosen env."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def write_plugin(
    folder: Path, status: dict[str, Any], *, api_version: str, name: str = "creds"
) -> Plugin:
    """A plugin printing an ExecCredential with `status` (a `status` file next to it may be
    rewritten to change what later runs print)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    status_file = folder / f"{name}.status.json"
    status_file.write_text(json.dumps(status))
    path = folder / name
    path.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import json, os, sys
            info = os.environ.get("KUBERNETES_EXEC_INFO")
            with open({str(log)!r}, "a") as out:
                out.write(json.dumps({{
                    "argv": sys.argv[1:],
                    "info": json.loads(info) if info else None,
                    "env": os.environ.get("PLUGIN_SETTING"),
                }}) + "\\n")
            with open({str(status_file)!r}) as f:
                status = json.load(f)
            print(json.dumps({{
                "apiVersion": {api_version!r},
                "kind": "ExecCredential",
                "status": status,
            }}))
            """
        )
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return Plugin(path=path, log=log)


def write_script(path: Path, body: str) -> Path:
    """An executable Python script with `body`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{textwrap.dedent(body)}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def set_status(plugin: Plugin, status: dict[str, Any]) -> None:
    (plugin.path.parent / f"{plugin.path.name}.status.json").write_text(json.dumps(status))
