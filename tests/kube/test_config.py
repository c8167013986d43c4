"""`KubeConfig.load()`: which configuration is used, what each field becomes, what is refused."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from trio_election._kube import ExecConfig, KubeConfig, KubeConfigError

from .conftest import b64, kubeconfig

if TYPE_CHECKING:
    from .conftest import Pki


def service_account(
    folder: Path,
    *,
    token: str = "sa-token",
    namespace: str | None = "prod",
    ca: bytes | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    if namespace is not None:
        (folder / "namespace").write_text(namespace + "\n")
    if ca is not None:
        (folder / "ca.crt").write_bytes(ca)
    return folder


def in_pod(monkeypatch: pytest.MonkeyPatch, folder: Path, host: str = "10.0.0.1") -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("TRIO_ELECTION_SERVICE_ACCOUNT_DIR", str(folder))


# --- which configuration ---------------------------------------------------------------


def test_explicit_path(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc", cluster={"server": "https://example.test:6443/"}, namespace="team"
    )
    config = KubeConfig.load(path)
    assert config.server == "https://example.test:6443"
    assert config.namespace == "team"
    assert str(path) in config.source


def test_explicit_path_beats_kubeconfig_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = kubeconfig(tmp_path / "env", cluster={"server": "https://from-env:1"})
    monkeypatch.setenv("KUBECONFIG", str(env))
    path = kubeconfig(tmp_path / "explicit", cluster={"server": "https://explicit:1"})
    assert KubeConfig.load(str(path)).server == "https://explicit:1"


def test_namespace_defaults_to_default(tmp_path: Path) -> None:
    assert KubeConfig.load(kubeconfig(tmp_path / "kc")).namespace == "default"


def test_named_context_instead_of_current(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "a",
                "clusters": [
                    {"name": "a", "cluster": {"server": "https://a:1"}},
                    {"name": "b", "cluster": {"server": "https://b:1"}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "a", "context": {"cluster": "a", "user": "u"}},
                    {"name": "b", "context": {"cluster": "b", "user": "u", "namespace": "nb"}},
                ],
            }
        )
    )
    assert KubeConfig.load(path).server == "https://a:1"
    other = KubeConfig.load(path, context="b")
    assert (other.server, other.namespace) == ("https://b:1", "nb")


def test_kubeconfig_variable_merges_first_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    first.write_text(
        yaml.safe_dump(
            {
                "current-context": "dev",
                "clusters": [{"name": "shared", "cluster": {"server": "https://first:1"}}],
                "users": [],
                "contexts": [{"name": "dev", "context": {"cluster": "shared", "user": "me"}}],
            }
        )
    )
    second = tmp_path / "second"
    second.write_text(
        yaml.safe_dump(
            {
                "current-context": "prod",
                "clusters": [{"name": "shared", "cluster": {"server": "https://second:1"}}],
                "users": [{"name": "me", "user": {"token": "from-second"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "shared", "user": "nobody"}},
                    {"name": "prod", "context": {"cluster": "shared", "user": "me"}},
                ],
            }
        )
    )
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(missing), str(first), "", str(second)]))
    config = KubeConfig.load()
    # current-context and the cluster come from the first file; the user only from the second
    assert config.server == "https://first:1"
    assert config.token == "from-second"
    assert "prod" not in config.source
    # a context only the second file defines, with the first file's cluster
    assert KubeConfig.load(context="prod").server == "https://first:1"


def test_kubeconfig_variable_with_no_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    # even a pod's service account does not stand in for a broken $KUBECONFIG
    in_pod(monkeypatch, service_account(tmp_path / "sa"))
    with pytest.raises(KubeConfigError, match=r"\$KUBECONFIG") as info:
        KubeConfig.load()
    assert str(tmp_path / "a") in str(info.value)


def test_kubeconfig_variable_beats_in_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_pod(monkeypatch, service_account(tmp_path / "sa"))
    monkeypatch.setenv(
        "KUBECONFIG", str(kubeconfig(tmp_path / "kc", cluster={"server": "https://env:1"}))
    )
    assert KubeConfig.load().server == "https://env:1"


def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    folder = service_account(tmp_path / "sa", namespace="prod", ca=pki.ca_pem)
    in_pod(monkeypatch, folder)
    kubeconfig(Path.home() / ".kube" / "config", cluster={"server": "https://home:1"})
    config = KubeConfig.load()
    assert config.server == "https://10.0.0.1:443"
    assert config.namespace == "prod"
    assert config.certificate_authority_data == pki.ca_pem
    assert config.token_file == folder / "token"
    assert config.source == "in-cluster"


def test_in_cluster_with_a_folder_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = service_account(tmp_path / "elsewhere", namespace="given")
    in_pod(monkeypatch, tmp_path / "no-such-folder")
    config = KubeConfig.in_cluster(folder)
    assert (config.server, config.namespace) == ("https://10.0.0.1:443", "given")
    assert config.token_file == folder / "token"


def test_in_cluster_outside_a_pod(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="not running in a pod"):
        KubeConfig.in_cluster(service_account(tmp_path / "sa"))


def test_in_cluster_pod_namespace_variable_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the downward API's $POD_NAMESPACE comes before the mounted file, as in client-go
    in_pod(monkeypatch, service_account(tmp_path / "sa", namespace="prod"))
    monkeypatch.setenv("POD_NAMESPACE", "from-downward-api")
    assert KubeConfig.load().namespace == "from-downward-api"


def test_in_cluster_ipv6_and_default_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_pod(monkeypatch, service_account(tmp_path / "sa", namespace=None), host="fd00::1")
    config = KubeConfig.load()
    assert config.server == "https://[fd00::1]:443"
    assert config.namespace == "default"


def test_in_cluster_needs_both_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_pod(monkeypatch, service_account(tmp_path / "sa"))
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    kubeconfig(Path.home() / ".kube" / "config", cluster={"server": "https://home:1"})
    assert KubeConfig.load().server == "https://home:1"


def test_in_cluster_without_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    in_pod(monkeypatch, folder)
    with pytest.raises(KubeConfigError, match="token") as info:
        KubeConfig.load()
    assert str(folder / "token") in str(info.value)


def test_in_cluster_ca_that_is_not_pem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_pod(monkeypatch, service_account(tmp_path / "sa", ca=b"not a certificate"))
    with pytest.raises(KubeConfigError, match=r"ca\.crt"):
        KubeConfig.load()


def test_home_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "other-home"
    monkeypatch.setenv("HOME", str(home))
    kubeconfig(home / ".kube" / "config", cluster={"server": "https://home:1"})
    config = KubeConfig.load()
    assert config.server == "https://home:1"
    assert str(home / ".kube" / "config") in config.source


def test_nothing_found() -> None:
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load()
    message = str(info.value)
    assert "KUBERNETES_SERVICE_HOST" in message
    assert "~/.kube/config" in message
    assert "KUBECONFIG" in message


# --- fields -----------------------------------------------------------------------------


def test_cluster_fields(tmp_path: Path, pki: Pki) -> None:
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc",
            cluster={
                "server": "https://127.0.0.1:6443",
                "certificate-authority-data": b64(pki.ca_pem),
                "tls-server-name": "api.internal",
                "proxy-url": "http://proxy.test:3128",
            },
        )
    )
    assert config.certificate_authority_data == pki.ca_pem
    assert config.tls_server_name == "api.internal"
    assert config.proxy_url == "http://proxy.test:3128"
    assert config.insecure_skip_tls_verify is False
    assert config.certificate_authority_source == (
        f"kubeconfig {tmp_path / 'kc'}, clusters[main].cluster.certificate-authority-data"
    )


def test_without_a_ca_the_system_trust_store_is_named(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", cluster={"server": "https://x:1"})
    assert KubeConfig.load(path).certificate_authority_source == (
        f"the system trust store (kubeconfig {path}, clusters[main].cluster sets no "
        f"certificate-authority)"
    )


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc", cluster={"server": "https://x:1", "insecure-skip-tls-verify": True}
        )
    )
    assert config.insecure_skip_tls_verify is True


def test_insecure_skip_tls_verify_must_be_a_boolean(tmp_path: Path) -> None:
    # a quoted "false" must not turn verification off
    path = kubeconfig(
        tmp_path / "kc", cluster={"server": "https://x:1", "insecure-skip-tls-verify": "false"}
    )
    with pytest.raises(KubeConfigError, match="insecure-skip-tls-verify must be true or false"):
        KubeConfig.load(path)


def test_relative_paths_resolve_against_the_kubeconfig_folder(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "pki").mkdir(parents=True)
    (folder / "pki" / "ca.crt").write_bytes(pki.ca_pem)
    (folder / "pki" / "client.crt").write_bytes(pki.client_cert_pem)
    (folder / "pki" / "client.key").write_bytes(pki.client_key_pem)
    (folder / "token").write_text("file-token\n")
    kubeconfig(
        folder / "kc",
        cluster={"server": "https://x:1", "certificate-authority": "pki/ca.crt"},
        user={
            "client-certificate": "pki/client.crt",
            "client-key": "pki/client.key",
            "tokenFile": "token",
        },
    )
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's folder
    config = KubeConfig.load(folder / "kc")
    assert config.certificate_authority_data == pki.ca_pem
    assert config.certificate_authority_source.endswith(
        f"clusters[main].cluster.certificate-authority ({folder / 'pki' / 'ca.crt'})"
    )
    assert config.client_certificate_data == pki.client_cert_pem
    assert config.client_key_data == pki.client_key_pem
    assert config.token_file is not None
    assert config.token_file.read_text() == "file-token\n"


@pytest.mark.parametrize(("content", "problem"), [(None, "No such file"), ("\n", "is empty")])
def test_token_file_that_cannot_serve(tmp_path: Path, content: str | None, problem: str) -> None:
    # refused when loading, as kubectl does, not at the first request
    if content is not None:
        (tmp_path / "token").write_text(content)
    path = kubeconfig(tmp_path / "kc", user={"tokenFile": "token"})
    with pytest.raises(KubeConfigError, match=problem) as info:
        KubeConfig.load(path)
    assert f"kubeconfig {path}, users[main].user.tokenFile" in str(info.value)
    assert str(tmp_path / "token") in str(info.value)


def test_relative_token_file_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "token").write_text("file-token")
    kubeconfig(folder / "kc", user={"tokenFile": "token"})
    monkeypatch.chdir(folder)
    config = KubeConfig.load("kc")
    monkeypatch.chdir(tmp_path)
    assert config.token_file is not None
    assert config.token_file.read_text() == "file-token"


def test_data_fields_win_over_files_and_may_be_wrapped(tmp_path: Path, pki: Pki) -> None:
    wrapped = "\n".join(re.findall(".{1,76}", b64(pki.client_key_pem)))
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc",
            user={
                "client-certificate-data": b64(pki.client_cert_pem),
                "client-certificate": "does-not-exist.crt",
                "client-key-data": wrapped,
            },
        )
    )
    assert config.client_certificate_data == pki.client_cert_pem
    assert config.client_key_data == pki.client_key_pem


def test_user_token_and_basic_auth(tmp_path: Path) -> None:
    config = KubeConfig.load(kubeconfig(tmp_path / "kc", user={"token": "abc"}))
    assert (config.token, config.username, config.password) == ("abc", None, None)
    config = KubeConfig.load(
        kubeconfig(tmp_path / "kc", user={"username": "bob", "password": "pw"})
    )
    assert (config.token, config.username, config.password) == (None, "bob", "pw")


@pytest.mark.parametrize("token", [{"token": "tok-SECRET"}, {"tokenFile": "token.txt"}])
def test_token_and_basic_auth_together_are_refused(tmp_path: Path, token: dict[str, str]) -> None:
    (tmp_path / "token.txt").write_text("file-SECRET")
    path = kubeconfig(tmp_path / "kc", user={**token, "username": "bob", "password": "pw-SECRET"})
    with pytest.raises(KubeConfigError, match="only one is allowed") as info:
        KubeConfig.load(path)
    assert f"kubeconfig {path}, users[main].user" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_insecure_with_a_certificate_authority_is_refused(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        cluster={
            "server": "https://x:1",
            "insecure-skip-tls-verify": True,
            "certificate-authority-data": b64(pki.ca_pem),
        },
    )
    with pytest.raises(KubeConfigError, match="insecure-skip-tls-verify") as info:
        KubeConfig.load(path)
    assert f"kubeconfig {path}, clusters[main].cluster" in str(info.value)
    assert "remove one" in str(info.value)


@pytest.mark.parametrize(
    "proxy", ["ftp://proxy.test:21", "proxy.test:3128", "http://:3128", "http://proxy.test:port"]
)
def test_proxy_url_that_cannot_work(tmp_path: Path, proxy: str) -> None:
    path = kubeconfig(tmp_path / "kc", cluster={"server": "https://x:1", "proxy-url": proxy})
    with pytest.raises(KubeConfigError, match="proxy-url must be SCHEME://HOST") as info:
        KubeConfig.load(path)
    assert f"kubeconfig {path}, clusters[main].cluster" in str(info.value)


def test_proxy_url_password_is_not_shown(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc", cluster={"server": "https://x:1", "proxy-url": "gopher://u:pw-SECRET@p:1"}
    )
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert "gopher://u:***@p:1" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_exec_v1(tmp_path: Path) -> None:
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc",
            user={
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "get-token",
                    "args": ["--cluster", "prod"],
                    "env": [{"name": "PLUGIN_SETTING", "value": "x"}],
                    "installHint": "install get-token",
                    "provideClusterInfo": True,
                    "interactiveMode": "Never",
                }
            },
        )
    )
    assert config.exec == ExecConfig(
        command="get-token",
        api_version="client.authentication.k8s.io/v1",
        args=("--cluster", "prod"),
        env=(("PLUGIN_SETTING", "x"),),
        install_hint="install get-token",
        provide_cluster_info=True,
        interactive_mode="Never",
        base_dir=tmp_path,
    )


def test_exec_v1beta1_interactive_mode_is_optional(tmp_path: Path) -> None:
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc",
            user={"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "c"}},
        )
    )
    assert config.exec is not None
    assert config.exec.interactive_mode == "IfAvailable"


def test_exec_v1_requires_interactive_mode(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "c"}},
    )
    with pytest.raises(KubeConfigError, match="interactiveMode is required") as info:
        KubeConfig.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("exec_section", "match"),
    [
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "c"}, "apiVersion"),
        ({"command": "c", "interactiveMode": "Never"}, "apiVersion"),
        ({"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never"}, "command"),
        (
            {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "c",
                "interactiveMode": "Sometimes",
            },
            "interactiveMode",
        ),
    ],
)
def test_exec_section_refused(tmp_path: Path, exec_section: dict[str, str], match: str) -> None:
    with pytest.raises(KubeConfigError, match=match):
        KubeConfig.load(kubeconfig(tmp_path / "kc", user={"exec": exec_section}))


# --- errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist") as info:
        KubeConfig.load(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(KubeConfigError, match="cannot read kubeconfig") as info:
        KubeConfig.load(folder)
    assert str(folder) in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: [\n")
    with pytest.raises(KubeConfigError, match=r"not valid YAML at line \d+") as info:
        KubeConfig.load(path)
    assert str(path) in str(info.value)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("- just\n- a list\n")
    with pytest.raises(KubeConfigError, match="mapping"):
        KubeConfig.load(path)


def test_unknown_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc")
    with pytest.raises(KubeConfigError, match=r"context 'other' is not in kubeconfig") as info:
        KubeConfig.load(path, context="other")
    assert "contexts: main" in str(info.value)


def test_no_current_context(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="current-context"):
        KubeConfig.load(kubeconfig(tmp_path / "kc", current=None))


def test_unknown_cluster(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "clusters": [],
                "users": [],
                "contexts": [{"name": "c", "context": {"cluster": "gone"}}],
            }
        )
    )
    with pytest.raises(KubeConfigError, match="cluster 'gone'") as info:
        KubeConfig.load(path)
    assert str(path) in str(info.value)


def test_unknown_user(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": "https://x:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "ghost"}}],
            }
        )
    )
    with pytest.raises(KubeConfigError, match="user 'ghost'"):
        KubeConfig.load(path)


def test_no_server(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", cluster={"insecure-skip-tls-verify": True})
    with pytest.raises(KubeConfigError, match="no server") as info:
        KubeConfig.load(path)
    assert "clusters[main]" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "server", ["127.0.0.1:6443", "ftp://k8s.test", "https://", "https://k8s.test:port"]
)
def test_server_that_is_not_a_url(tmp_path: Path, server: str) -> None:
    path = kubeconfig(tmp_path / "kc", cluster={"server": server})
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert str(info.value) == (
        f"kubeconfig {path}, clusters[main].cluster: server must be "
        f"https://HOST[:PORT][/PATH], got {server!r}"
    )


def test_server_with_a_path_prefix(tmp_path: Path) -> None:
    # e.g. a cluster behind a management proxy
    path = kubeconfig(tmp_path / "kc", cluster={"server": "https://rancher.test/k8s/clusters/c-1/"})
    assert KubeConfig.load(path).server == "https://rancher.test/k8s/clusters/c-1"


def test_bad_base64(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        cluster={"server": "https://x:1", "certificate-authority-data": "not*base64"},
    )
    with pytest.raises(
        KubeConfigError, match="certificate-authority-data is not valid base64"
    ) as info:
        KubeConfig.load(path)
    assert str(path) in str(info.value)


def test_ca_that_is_not_pem(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        cluster={"server": "https://x:1", "certificate-authority-data": b64("hello")},
    )
    with pytest.raises(KubeConfigError, match="does not parse as PEM") as info:
        KubeConfig.load(path)
    assert "clusters[main]" in str(info.value)


def test_missing_ca_file(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc", cluster={"server": "https://x:1", "certificate-authority": "ca.crt"}
    )
    with pytest.raises(KubeConfigError, match="cannot read certificate-authority file") as info:
        KubeConfig.load(path)
    assert str(tmp_path / "ca.crt") in str(info.value)


def test_key_that_is_not_pem(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        user={
            "client-certificate-data": b64(pki.client_cert_pem),
            "client-key-data": b64("secret-ish"),
        },
    )
    with pytest.raises(KubeConfigError, match="client-key") as info:
        KubeConfig.load(path)
    assert "secret-ish" not in str(info.value)


GARBAGE_CERT = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
GARBAGE_KEY = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


def test_ca_with_pem_markers_that_does_not_parse(tmp_path: Path) -> None:
    # refused when loading, naming the entry and the field (not at the first request)
    path = kubeconfig(
        tmp_path / "kc",
        cluster={"server": "https://x:1", "certificate-authority-data": b64(GARBAGE_CERT)},
    )
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert str(info.value) == (
        f"kubeconfig {path}, clusters[main].cluster.certificate-authority-data: "
        "the certificate authority does not parse as a PEM certificate"
    )


def test_ca_file_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(GARBAGE_CERT)
    path = kubeconfig(
        tmp_path / "kc", cluster={"server": "https://x:1", "certificate-authority": "ca.crt"}
    )
    with pytest.raises(KubeConfigError, match="certificate authority does not parse") as info:
        KubeConfig.load(path)
    assert f"certificate-authority ({tmp_path / 'ca.crt'})" in str(info.value)


def test_in_cluster_ca_with_pem_markers_that_does_not_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_pod(monkeypatch, service_account(tmp_path / "sa", ca=GARBAGE_CERT))
    with pytest.raises(KubeConfigError, match="certificate authority does not parse") as info:
        KubeConfig.load()
    assert str(tmp_path / "sa" / "ca.crt") in str(info.value)


def test_client_certificate_that_does_not_parse(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        user={
            "client-certificate-data": b64(GARBAGE_CERT),
            "client-key-data": b64(pki.client_key_pem),
        },
    )
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert str(info.value) == (
        f"kubeconfig {path}, users[main].user.client-certificate-data: "
        "the client certificate does not parse as a PEM certificate"
    )


def test_client_key_that_does_not_parse(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        user={
            "client-certificate-data": b64(pki.client_cert_pem),
            "client-key-data": b64(GARBAGE_KEY),
        },
    )
    with pytest.raises(KubeConfigError) as info:
        KubeConfig.load(path)
    assert str(info.value) == (
        f"kubeconfig {path}, users[main].user.client-key-data: "
        "the client key does not parse as a PEM private key"
    )


def test_client_key_of_another_certificate(tmp_path: Path, pki: Pki) -> None:
    other = pki.ca.issue_cert("bob@example.org")
    (tmp_path / "bob.key").write_bytes(other.private_key_pem.bytes())
    path = kubeconfig(
        tmp_path / "kc",
        user={"client-certificate-data": b64(pki.client_cert_pem), "client-key": "bob.key"},
    )
    with pytest.raises(KubeConfigError, match="client certificate and key do not match") as info:
        KubeConfig.load(path)
    assert f"users[main].user.client-key ({tmp_path / 'bob.key'})" in str(info.value)
    assert other.private_key_pem.bytes().decode().splitlines()[1] not in str(info.value)


def test_client_key_with_a_passphrase(tmp_path: Path, pki: Pki) -> None:
    # refused with a clear message; OpenSSL is never left to prompt on a terminal
    key = serialization.load_pem_private_key(pki.client_key_pem, password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    path = kubeconfig(
        tmp_path / "kc",
        user={
            "client-certificate-data": b64(pki.client_cert_pem),
            "client-key-data": b64(encrypted),
        },
    )
    with pytest.raises(KubeConfigError, match="encrypted with a passphrase") as info:
        KubeConfig.load(path)
    assert "users[main].user.client-key-data" in str(info.value)


@pytest.mark.parametrize("present", ["client-certificate-data", "client-key-data"])
def test_certificate_and_key_only_together(tmp_path: Path, pki: Pki, present: str) -> None:
    data = pki.client_cert_pem if present == "client-certificate-data" else pki.client_key_pem
    with pytest.raises(
        KubeConfigError, match="client-certificate and client-key must be given together"
    ):
        KubeConfig.load(kubeconfig(tmp_path / "kc", user={present: b64(data)}))


# --- secrets ----------------------------------------------------------------------------


def test_repr_hides_secrets(tmp_path: Path, pki: Pki) -> None:
    config = KubeConfig.load(
        kubeconfig(
            tmp_path / "kc",
            user={
                "token": "tok-SECRET",
                "client-certificate-data": b64(pki.client_cert_pem),
                "client-key-data": b64(pki.client_key_pem),
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "c",
                    "args": ["get-token", "--oidc-client-secret=arg-SECRET"],
                    "env": [{"name": "API_KEY", "value": "env-SECRET"}],
                },
            },
        )
    )
    # basic auth cannot come with a token in one kubeconfig: the same config with it instead
    basic = dataclasses.replace(
        config,
        token=None,
        username="bob",
        password="pw-SECRET",
        proxy_url="http://proxy-user:proxy-SECRET@proxy.test:3128",
    )
    text = repr(config) + repr(basic)
    assert "SECRET" not in text
    assert "PRIVATE" not in text
    key_body = pki.client_key_pem.decode().splitlines()[1]
    assert key_body not in text
    assert "https://127.0.0.1:6443" in text  # still useful
    assert "command='c'" in text
    assert "API_KEY" in text
    assert "http://proxy-user:***@proxy.test:3128" in text
