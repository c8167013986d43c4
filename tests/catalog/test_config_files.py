"""Malformed kubeconfig and service-account files: each a clear error naming the file, the
field and the fix, raised by `KubeConfig.load()` (or, for what is read while in use, by the
first request, out of `elect()` unwrapped).

`tests/kube/test_config.py` covers the rest (missing or unreadable files, YAML syntax,
unknown contexts, clusters and users, bad servers, base64, PEM, keys, exec sections); the
table in docs/guarantees.md lists both. The in-cluster cases point the server at a closed
port on 127.0.0.1, so that nothing leaves the machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

import trio_election as te
from trio_election._kube import KubeConfig, KubeConfigError
from trio_election.kube import KubeClient

if TYPE_CHECKING:
    from pathlib import Path

GOOD_USER = "{token: t}"
TEMPLATE = """apiVersion: v1
current-context: c
clusters:
- name: k
  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}
users:
- name: u
  user: %s
contexts:
- name: c
  context: {cluster: k, user: u%s}
"""


def kubeconfig(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("current-context: c\nclusters: 5\n", "clusters must be a list"),
        (
            "current-context: c\nclusters:\n- cluster: {server: 'https://x:1'}\n",
            "every entry of clusters needs a name",
        ),
        (
            "current-context: c\nclusters: []\ncontexts:\n- name: c\n  context: hello\n",
            "contexts[c].context must be a mapping",
        ),
        (TEMPLATE % ("oops", ""), "users[u].user must be a mapping"),
        (TEMPLATE % ("{token: 12345}", ""), "users[u].user: token must be a string"),
        (TEMPLATE % ("{token: [a, b]}", ""), "users[u].user: token must be a string"),
        ("", "has no current-context and no context was given: set current-context"),
    ],
    ids=[
        "clusters-not-a-list",
        "entry-without-name",
        "context-not-a-mapping",
        "user-not-a-mapping",
        "token-a-number",
        "token-a-list",
        "empty-file",
    ],
)
def test_malformed_kubeconfig(tmp_path: Path, text: str, problem: str) -> None:
    path = kubeconfig(tmp_path / "config", text)
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value)


def test_kubeconfig_that_is_not_text(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", b"\xff\xfe\x00\x80 binary")
    with pytest.raises(KubeConfigError, match="config") as info:
        KubeConfig.load(path)
    assert str(path) in str(info.value)


def test_kubeconfig_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "\ufeff" + TEMPLATE % (GOOD_USER, ""))
    assert KubeConfig.load(path).server == "https://127.0.0.1:1"


async def test_a_namespace_that_is_not_a_dns_label_is_refused_by_elect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(tmp_path / "config", TEMPLATE % (GOOD_USER, ", namespace: 'Bad NS'"))
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(te.ConfigError, match=r"invalid namespace 'Bad NS'.*DNS label"):
        async with te.elect("leases/my-app", identity="a", stop_on_sigterm=False):
            pass  # pragma: no cover


def service_account(folder: Path, *, token: bytes = b"t\n", namespace: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_bytes(token)
    if namespace is not None:
        (folder / "namespace").write_bytes(namespace)
    return folder


@pytest.fixture
def in_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Pretend to run in a pod whose API server is a closed port on 127.0.0.1."""
    folder = tmp_path / "serviceaccount"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    monkeypatch.setenv("TRIO_ELECTION_SERVICE_ACCOUNT_DIR", str(folder))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    return folder


@pytest.mark.parametrize("token", [b"", b"  \n"], ids=["empty", "blank"])
async def test_in_cluster_token_file_that_is_empty(in_pod: Path, token: bytes) -> None:
    service_account(in_pod, token=token)
    with pytest.raises(KubeConfigError, match="is empty") as info, trio.fail_after(30):
        async with te.elect("leases/my-app", identity="a", stop_on_sigterm=False):
            pass  # pragma: no cover
    assert str(in_pod / "token") in str(info.value)


async def test_in_cluster_token_file_that_is_not_text(in_pod: Path) -> None:
    service_account(in_pod, token=b"\xff\xfe token")
    with pytest.raises(KubeConfigError, match="token"), trio.fail_after(30):
        async with te.elect("leases/my-app", identity="a", stop_on_sigterm=False):
            pass  # pragma: no cover


def test_in_cluster_namespace_file_that_is_not_text(in_pod: Path) -> None:
    service_account(in_pod, namespace=b"\xff\xfe")
    with pytest.raises(KubeConfigError, match="namespace"):
        KubeConfig.load()


def test_in_cluster_namespace_file_that_is_empty_means_default(in_pod: Path) -> None:
    service_account(in_pod, namespace=b"\n")
    assert KubeConfig.load().namespace == "default"


def test_in_cluster_namespace_that_is_not_a_dns_label(in_pod: Path) -> None:
    service_account(in_pod, namespace=b"Prod_NS\n")
    config = KubeConfig.load()
    with pytest.raises(te.ConfigError, match=r"invalid namespace 'Prod_NS'.*DNS label"):
        te.lock_from_string("leases/my-app", KubeClient(config))


def test_in_cluster_port_that_is_not_a_number(
    in_pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_account(in_pod)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "https")
    config = KubeConfig.load()
    with pytest.raises(KubeConfigError) as info:
        KubeClient(config)
    assert "in-cluster" in str(info.value)
    assert "'https://127.0.0.1:https'" in str(info.value)
    assert "must be https://HOST[:PORT]" in str(info.value)


def test_in_cluster_token_that_is_a_folder(in_pod: Path) -> None:
    in_pod.mkdir()
    (in_pod / "token").mkdir()
    with pytest.raises(KubeConfigError, match="mount a service account") as info:
        KubeConfig.load()
    assert str(in_pod / "token") in str(info.value)


def test_in_cluster_ca_that_is_empty(in_pod: Path) -> None:
    service_account(in_pod)
    (in_pod / "ca.crt").write_bytes(b"")
    with pytest.raises(KubeConfigError, match="does not parse as PEM") as info:
        KubeConfig.load()
    assert str(in_pod / "ca.crt") in str(info.value)
