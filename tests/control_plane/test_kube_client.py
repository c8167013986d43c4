"""`KubeConfig` + `KubeClient` against the real kube-apiserver: every way to authenticate,
typed errors as the apiserver really sends them, a watch. Real TLS, real time."""

from __future__ import annotations

import json
import logging
import secrets
import stat
import sys
import textwrap
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trustme
import yaml

import trio_election as te
from trio_election._kube import (
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    KubeClient,
    KubeConfig,
    NotFoundError,
    TLSVerificationError,
    UnauthorizedError,
)
from trio_election._kube_locks import LeaseLock

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election._kube._watch import WatchEvent
    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

LEASE_RIGHTS = {"leases": ["get", "create", "update", "patch", "list", "watch"]}
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def leases(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def lease_body(name: str, holder: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


async def whoami(client: KubeClient) -> str:
    review = await client.request(
        "POST", WHOAMI, json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    return str(review["status"]["userInfo"]["username"])


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("kube-client")


@pytest.fixture(scope="module")
def holder(control_plane: ControlPlane, namespace: str) -> TestUser:
    return control_plane.user("holder", namespace=namespace, verbs=LEASE_RIGHTS)


def kubeconfig_for(
    path: Path, control_plane: ControlPlane, user: dict[str, Any], namespace: str
) -> Path:
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority": str(control_plane.ca_file),
                },
            }
        ],
        "users": [{"name": "test", "user": user}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}
        ],
    }
    path.write_text(yaml.safe_dump(data))
    return path


async def test_token_from_the_users_kubeconfig(holder: TestUser) -> None:
    config = KubeConfig.load(holder.kubeconfig)
    async with KubeClient(config) as client:
        assert client.namespace == holder.namespace
        assert await whoami(client) == holder.username
        name = f"token-{secrets.token_hex(3)}"
        created = await client.request("POST", leases(holder.namespace), json=lease_body(name))
        got = await client.request("GET", f"{leases(holder.namespace)}/{name}")
    assert got["spec"]["holderIdentity"] == "a"
    assert got["metadata"]["uid"] == created["metadata"]["uid"]


async def test_token_file(tmp_path: Path, control_plane: ControlPlane, holder: TestUser) -> None:
    (tmp_path / "token").write_text(holder.token + "\n")
    path = kubeconfig_for(tmp_path / "kc", control_plane, {"tokenFile": "token"}, holder.namespace)
    async with KubeClient(KubeConfig.load(path)) as client:
        assert await whoami(client) == holder.username


async def test_client_certificate(
    tmp_path: Path, control_plane: ControlPlane, namespace: str
) -> None:
    cert, key = control_plane.client_cert_user("carol", groups=["carol-group"])
    path = kubeconfig_for(
        tmp_path / "kc",
        control_plane,
        {"client-certificate": str(cert), "client-key": str(key)},
        namespace,
    )
    async with KubeClient(KubeConfig.load(path)) as client:
        assert await whoami(client) == "carol"
        with pytest.raises(ForbiddenError) as info:  # a certificate with no rights bound
            await client.request("GET", f"{leases(namespace)}/anything")
    assert 'User "carol"' in info.value.message


async def test_exec_plugin(tmp_path: Path, control_plane: ControlPlane, holder: TestUser) -> None:
    log = tmp_path / "runs"
    plugin = tmp_path / "print-token"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": holder.token},
    }
    plugin.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import os
            with open({str(log)!r}, "a") as out:
                out.write(os.environ["KUBERNETES_EXEC_INFO"] + "\\n")
            print({json.dumps(json.dumps(credential))})
            """
        )
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        }
    }
    path = kubeconfig_for(tmp_path / "kc", control_plane, user, holder.namespace)
    async with KubeClient(KubeConfig.load(path)) as client:
        assert await whoami(client) == holder.username
        await client.request("GET", leases(holder.namespace))
    [info] = [json.loads(line) for line in log.read_text().splitlines()]
    assert info["spec"]["cluster"]["server"] == control_plane.server


async def test_exec_plugin_client_certificate(
    tmp_path: Path, control_plane: ControlPlane, namespace: str
) -> None:
    cert, key = control_plane.client_cert_user("dave")
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {
            "clientCertificateData": cert.read_text(),
            "clientKeyData": key.read_text(),
        },
    }
    plugin = tmp_path / "print-certificate"
    plugin.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(credential))})\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}}
    path = kubeconfig_for(tmp_path / "kc", control_plane, user, namespace)
    async with KubeClient(KubeConfig.load(path)) as client:
        assert await whoami(client) == "dave"


async def test_token_file_reread_after_a_401(
    tmp_path: Path, control_plane: ControlPlane, holder: TestUser
) -> None:
    # the file holds a refused token; once it holds a good one, the next request's 401 makes
    # the client read it again (well before the once-a-minute re-read) and succeed
    token_file = tmp_path / "token"
    token_file.write_text("expired-token\n")
    path = kubeconfig_for(tmp_path / "kc", control_plane, {"tokenFile": "token"}, holder.namespace)
    async with KubeClient(KubeConfig.load(path)) as client:
        with pytest.raises(UnauthorizedError) as info:
            await whoami(client)
        token_file.write_text(holder.token + "\n")
        assert await whoami(client) == holder.username
    assert "expired-token" not in str(info.value)


async def test_refused_token(control_plane: ControlPlane) -> None:
    config = KubeConfig(
        server=control_plane.server,
        certificate_authority_data=control_plane.ca_pem,
        token="not-a-real-token",
    )
    async with KubeClient(config) as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.request("GET", leases("default"))
    assert info.value.status == 401
    assert "not-a-real-token" not in str(info.value)


async def test_a_refused_token_at_start_ends_an_election_at_once(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """No 15 s grace for a token refused before anything worked (docs/locks.md): elect()
    and `status` fail on the first answer. Before, both waited out the grace."""
    user = {"token": "not-a-real-token"}
    path = kubeconfig_for(tmp_path / "kc", control_plane, user, namespace)
    with trio.fail_after(10):  # the grace was 15 s; one request is well under 10
        async with KubeClient(KubeConfig.load(path)) as client:
            with pytest.raises(UnauthorizedError, match="The credentials were refused"):
                async with te.elect(f"leases/{namespace}/refused", client=client):
                    pytest.fail("a refused token cannot lead")  # pragma: no cover
    done = await trio.run_process(
        [sys.executable, "-m", "trio_election", "status", f"leases/{namespace}/refused",
         "--kubeconfig", str(path)],
        capture_stdout=True, capture_stderr=True, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.startswith(f"trio-election: error: cannot read leases/{namespace}/refused: 401")
    assert err.count("\n") == 1, err
    assert "retried" not in err
    assert "not-a-real-token" not in err


async def test_status_reports_a_403_at_once_without_promising_retries(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """status reads once: the lock's "retried for up to 15 s" would not be true there."""
    nobody = control_plane.user("status-nobody", namespace=namespace, verbs={})
    path = kubeconfig_for(tmp_path / "kc", control_plane, {"token": nobody.token}, namespace)
    done = await trio.run_process(
        [sys.executable, "-m", "trio_election", "status", f"leases/{namespace}/x",
         "--kubeconfig", str(path)],
        capture_stdout=True, capture_stderr=True, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.startswith(f"trio-election: error: cannot read leases/{namespace}/x: 403"), err
    assert err.count("\n") == 1, err
    assert "retried" not in err


async def test_forbidden_names_verb_and_resource(
    control_plane: ControlPlane, namespace: str
) -> None:
    nobody = control_plane.user("nobody", namespace=namespace, verbs={})
    async with KubeClient(KubeConfig.load(nobody.kubeconfig)) as client:
        with pytest.raises(ForbiddenError) as info:
            await client.request("GET", f"{leases(namespace)}/x")
        with pytest.raises(ForbiddenError) as watch_info:
            async with aclosing(client.watch(leases(namespace), params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover
    error = info.value
    assert (error.verb, error.resource) == ("get", "leases")
    text = str(error)
    assert nobody.username in text
    assert 'apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get"]' in text
    assert f'to a Role in namespace "{namespace}"' in text
    assert (watch_info.value.verb, watch_info.value.resource) == ("watch", "leases")


async def test_not_found_already_exists_and_stale_resource_version(holder: TestUser) -> None:
    base = leases(holder.namespace)
    name = f"conflict-{secrets.token_hex(3)}"
    async with KubeClient(KubeConfig.load(holder.kubeconfig)) as client:
        with pytest.raises(NotFoundError):
            await client.request("GET", f"{base}/{name}")
        created = await client.request("POST", base, json=lease_body(name))
        with pytest.raises(AlreadyExistsError):
            await client.request("POST", base, json=lease_body(name))
        first = dict(created, spec={"holderIdentity": "b", "leaseDurationSeconds": 15})
        updated = await client.request("PUT", f"{base}/{name}", json=first)
        assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        stale = dict(created, spec={"holderIdentity": "c", "leaseDurationSeconds": 15})
        with pytest.raises(ConflictError) as info:
            await client.request("PUT", f"{base}/{name}", json=stale)
        assert not isinstance(info.value, AlreadyExistsError)
        assert info.value.status == 409
        assert "the object has been modified" in info.value.message
        got = await client.request("GET", f"{base}/{name}")
    assert got["spec"]["holderIdentity"] == "b"


async def test_watch_sees_an_update(holder: TestUser) -> None:
    base = leases(holder.namespace)
    name = f"watched-{secrets.token_hex(3)}"
    async with KubeClient(KubeConfig.load(holder.kubeconfig)) as client:
        created = await client.request("POST", base, json=lease_body(name))
        params = {
            "watch": "1",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": created["metadata"]["resourceVersion"],
            "timeoutSeconds": "30",
        }
        events: list[WatchEvent] = []
        with trio.fail_after(20):
            async with aclosing(client.watch(base, params=params)) as stream:
                changed = dict(created, spec={"holderIdentity": "z", "leaseDurationSeconds": 15})
                await client.request("PUT", f"{base}/{name}", json=changed)
                async for event in stream:
                    events.append(event)
                    break
    [event] = events
    assert event.type == "MODIFIED"
    assert event.object["spec"]["holderIdentity"] == "z"


async def test_endpoints_deprecation_warning_logged_once(
    control_plane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_election.kube")
    config = KubeConfig(
        server=control_plane.server,
        certificate_authority_data=control_plane.ca_pem,
        token=control_plane.admin_token,
    )
    async with KubeClient(config) as client:
        for _ in range(3):
            await client.request("GET", f"/api/v1/namespaces/{namespace}/endpoints")
    warned = [r.getMessage() for r in caplog.records if "Endpoints is deprecated" in r.getMessage()]
    assert len(warned) == 1
    assert control_plane.admin_token not in caplog.text


async def test_wrong_ca_fails_elect_at_once(
    tmp_path: Path, control_plane: ControlPlane, holder: TestUser
) -> None:
    """A kubeconfig whose CA did not sign the apiserver's certificate cannot heal: elect()
    raises on entry instead of retrying forever."""
    path = kubeconfig_for(tmp_path / "kc", control_plane, {"token": holder.token}, holder.namespace)
    wrong_ca = tmp_path / "wrong-ca.crt"
    wrong_ca.write_bytes(trustme.CA().cert_pem.bytes())
    path.write_text(path.read_text().replace(str(control_plane.ca_file), str(wrong_ca)))
    async with KubeClient(KubeConfig.load(path)) as client:
        with trio.fail_after(10), pytest.raises(TLSVerificationError) as info:
            async with te.elect(LeaseLock(holder.namespace, "wrong-ca", client), identity="a"):
                pytest.fail("led through an unverified server")  # pragma: no cover
    message = str(info.value)
    assert f"TLS verification of the API server {control_plane.server} failed: " in message
    assert f"clusters[test].cluster.certificate-authority ({wrong_ca})" in message
    assert f"kubeconfig {path}, context test" in message
    assert "That CA did not sign the server's certificate" in message
    assert holder.token not in message
