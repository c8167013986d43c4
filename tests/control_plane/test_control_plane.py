"""The test control plane is a real Kubernetes API: leases, conflicts, RBAC, watch, kubectl;
and its faults (apiserver restart, etcd outage, a frozen apiserver) are real ones."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from trio_election._controlplane._processes import Reaper
from trio_election.testing import ControlPlane, PortInUseError

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.control_plane

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def lease(name: str, holder: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("cp")


@pytest.fixture
def admin(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with control_plane.http_client() as client:
        yield client


def test_lease_created_and_read_back(admin: httpx.Client, namespace: str) -> None:
    leases = LEASES.format(namespace=namespace)
    created = admin.post(leases, json=lease("one", "alice"))
    assert created.status_code == 201, created.text
    read = admin.get(f"{leases}/one")
    assert read.status_code == 200
    assert read.json()["spec"]["holderIdentity"] == "alice"
    assert (
        read.json()["metadata"]["resourceVersion"] == created.json()["metadata"]["resourceVersion"]
    )


def test_update_with_a_stale_resource_version_conflicts(
    admin: httpx.Client, namespace: str
) -> None:
    leases = LEASES.format(namespace=namespace)
    stale = admin.post(leases, json=lease("two", "alice")).json()
    fresh = dict(stale, spec=dict(stale["spec"], holderIdentity="bob"))
    assert admin.put(f"{leases}/two", json=fresh).status_code == 200
    late = dict(stale, spec=dict(stale["spec"], holderIdentity="carol"))
    conflict = admin.put(f"{leases}/two", json=late)
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"
    assert admin.get(f"{leases}/two").json()["spec"]["holderIdentity"] == "bob"


def test_user_without_rights_is_refused_with_the_verb_and_resource(
    control_plane: ControlPlane, namespace: str
) -> None:
    nobody = control_plane.user("nobody", namespace=namespace, verbs={})
    with control_plane.http_client(nobody.token) as client:
        refused = client.get(f"{LEASES.format(namespace=namespace)}/any")
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert f'User "{nobody.username}" cannot get resource "leases"' in message
    assert 'in API group "coordination.k8s.io"' in message
    assert f'in the namespace "{namespace}"' in message


def test_user_holds_exactly_the_named_verbs_and_can_be_redefined(
    control_plane: ControlPlane, namespace: str
) -> None:
    leases = LEASES.format(namespace=namespace)
    reader = control_plane.user("reader", namespace=namespace, verbs={"leases": ["get"]})
    with control_plane.http_client(reader.token) as client:
        assert client.get(f"{leases}/missing").status_code == 404  # allowed, not there
        refused = client.post(leases, json=lease("three", "reader"))
        assert refused.status_code == 403
        assert 'cannot create resource "leases"' in refused.json()["message"]
        assert client.get("/api/v1/namespaces/default/configmaps").status_code == 403

    writer = control_plane.user(
        "reader", namespace=namespace, verbs={"leases": ["get", "create"], "configmaps": []}
    )
    assert writer.username == reader.username
    with control_plane.http_client(writer.token) as client:
        assert client.post(leases, json=lease("three", "reader")).status_code == 201
        assert client.get(f"{leases}/three").status_code == 200

    control_plane.user("reader", namespace=namespace, verbs={})
    with control_plane.http_client(writer.token) as client:
        assert client.get(f"{leases}/three").status_code == 403


def test_user_kubeconfig_holds_server_ca_token_and_namespace(
    control_plane: ControlPlane, namespace: str
) -> None:
    user = control_plane.user("configured", namespace=namespace, verbs={"leases": ["get"]})
    config = yaml.safe_load(user.kubeconfig.read_text())
    (cluster,) = config["clusters"]
    (context,) = config["contexts"]
    (entry,) = config["users"]
    assert config["current-context"] == context["name"]
    assert cluster["cluster"]["server"] == control_plane.server
    ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca == control_plane.ca_pem == control_plane.ca_file.read_bytes()
    assert entry["user"]["token"] == user.token
    assert context["context"]["namespace"] == namespace == user.namespace


def test_watch_sees_added_and_modified(admin: httpx.Client, namespace: str) -> None:
    leases = LEASES.format(namespace=namespace)
    since = admin.get(leases).json()["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []
    with admin.stream(
        "GET", leases, params={"watch": "1", "resourceVersion": since, "timeoutSeconds": "20"}
    ) as stream:
        assert stream.status_code == 200
        created = admin.post(leases, json=lease("watched", "alice")).json()
        created["spec"]["holderIdentity"] = "bob"
        assert admin.put(f"{leases}/watched", json=created).status_code == 200
        for line in stream.iter_lines():
            event = json.loads(line)
            seen.append((event["type"], event["object"]["spec"]["holderIdentity"]))
            if len(seen) == 2:
                break
    assert seen == [("ADDED", "alice"), ("MODIFIED", "bob")]


def test_kubectl_reads_a_lease_as_yaml(
    control_plane: ControlPlane, admin: httpx.Client, namespace: str
) -> None:
    if not (control_plane.bin_dir / "kubectl").exists():
        # $KUBEBUILDER_ASSETS may hold no kubectl; the build script always makes one
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: no kubectl next to kube-apiserver", pytrace=False)
        pytest.skip("no kubectl next to kube-apiserver: python scripts/build_control_plane.py")
    admin.post(LEASES.format(namespace=namespace), json=lease("shown", "alice"))
    done = control_plane.kubectl("get", "lease", "shown", "-n", namespace, "-o", "yaml")
    assert done.returncode == 0, done.stderr
    shown = yaml.safe_load(done.stdout)
    assert shown["kind"] == "Lease"
    assert shown["spec"]["holderIdentity"] == "alice"

    # the same through a limited user's kubeconfig, whose context names the namespace
    user = control_plane.user("viewer", namespace=namespace, verbs={"leases": ["get"]})
    done = control_plane.kubectl("get", "lease", "shown", "-o", "yaml", kubeconfig=user.kubeconfig)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["metadata"]["namespace"] == namespace


def test_client_certificate_names_the_user_and_groups(control_plane: ControlPlane) -> None:
    cert, key = control_plane.client_cert_user("carol", ["team-a", "team-b"])
    context = ssl.create_default_context(cadata=control_plane.ca_pem.decode())
    context.load_cert_chain(cert, key)
    with httpx.Client(base_url=control_plane.server, verify=context, trust_env=False) as client:
        review = client.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    assert review.status_code == 201, review.text
    info = review.json()["status"]["userInfo"]
    assert info["username"] == "carol"
    assert set(info["groups"]) == {"team-a", "team-b", "system:authenticated"}


def test_metrics_count_requests_by_verb_resource_and_code(
    control_plane: ControlPlane, admin: httpx.Client, namespace: str
) -> None:
    admin.get(f"{LEASES.format(namespace=namespace)}/absent")
    counted = [
        line
        for line in control_plane.metrics().splitlines()
        if line.startswith("apiserver_request_total{")
        and 'resource="leases"' in line
        and 'verb="GET"' in line
        and 'code="404"' in line
    ]
    assert counted


def test_stop_leaves_no_process_and_no_folder(control_plane: ControlPlane) -> None:
    plane = ControlPlane.start(control_plane.bin_dir)
    pids, folder = plane.pids, plane.temp_dir
    assert len(pids) == 2
    assert folder.is_dir()
    for pid in pids:
        os.killpg(pid, 0)  # each leads a live process group
    plane.pause_apiserver()  # a frozen process is cleaned up too
    with pytest.raises(RuntimeError, match="a failing test"), plane:
        raise RuntimeError("a failing test")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert not folder.exists()
    assert plane.pids == ()
    plane.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        plane.restart_apiserver()


def test_watchdog_kills_watched_groups_even_paused_but_not_forgotten_ones() -> None:
    # what happens to a control plane whose test process dies, after an apiserver restart:
    # the new group is killed, the old one's id (maybe reused by then) is left alone
    forgotten, watched = (
        subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)
    )
    try:
        reaper = Reaper()
        reaper.watch_group(forgotten.pid)
        reaper.forget_group(forgotten.pid)
        reaper.watch_group(watched.pid)
        os.killpg(watched.pid, signal.SIGSTOP)
        assert reaper._process is not None
        assert reaper._process.stdin is not None
        reaper._process.stdin.close()  # as when the owner is SIGKILLed: no "release"
        # SIGTERM acts (so it was resumed); a stopped process would need the SIGKILL
        assert watched.wait(10) == -signal.SIGTERM
        assert reaper._process.wait(10) == 0
        assert forgotten.poll() is None
    finally:
        for sleeper in (forgotten, watched):
            sleeper.kill()
            sleeper.wait()


def admin_from_kubeconfig(control_plane: ControlPlane) -> httpx.Client:
    config = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return httpx.Client(
        base_url=cluster["server"],
        verify=ssl.create_default_context(cadata=ca),
        headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}"},
        trust_env=False,
    )


def test_restarted_apiserver_keeps_its_url_objects_versions_tokens_and_rbac(
    control_plane: ControlPlane, admin: httpx.Client, namespace: str
) -> None:
    leases = LEASES.format(namespace=namespace)
    created = admin.post(leases, json=lease("kept", "alice")).json()
    user = control_plane.user("survivor", namespace=namespace, verbs={"leases": ["get", "update"]})
    server = control_plane.server
    etcd_pid, old_pid = control_plane.pids
    try:
        control_plane.restart_apiserver(down_for=0.2)
    finally:
        control_plane.ensure_running()
    assert control_plane.server == server
    etcd_after, new_pid = control_plane.pids
    assert etcd_after == etcd_pid
    assert new_pid != old_pid
    with pytest.raises(ProcessLookupError):
        os.killpg(old_pid, 0)  # nothing of the old apiserver is left

    with control_plane.http_client(user.token) as client:
        # the 403 window of a fresh apiserver (RBAC caches filling) closes before /readyz
        # says ok, and restart_apiserver() waits for that: the old token is accepted and
        # its RoleBinding in effect
        read = client.get(f"{leases}/kept")
        assert read.status_code == 200, read.text
        assert read.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        # the version read before the restart is still the current one
        moved = dict(created, spec=dict(created["spec"], holderIdentity="bob"))
        assert client.put(f"{leases}/kept", json=moved).status_code == 200
    with admin_from_kubeconfig(control_plane) as from_file:
        assert from_file.get(f"{leases}/kept").json()["spec"]["holderIdentity"] == "bob"
    control_plane.wait_for_rights(user)  # in effect already: returns at once
    with pytest.raises(ValueError, match="not made by this control plane"):
        control_plane.wait_for_rights(dataclasses.replace(user, name="stranger"))


def test_stopped_apiserver_refuses_and_comes_back_only_on_its_own_port(
    control_plane: ControlPlane, namespace: str
) -> None:
    user = control_plane.user("patient", namespace=namespace, verbs={"leases": ["get"]})
    server = control_plane.server
    port = urlsplit(server).port
    assert port is not None
    try:
        control_plane.stop_apiserver()
        control_plane.stop_apiserver()  # idempotent
        assert not control_plane.apiserver_running
        with control_plane.http_client(user.token) as client, pytest.raises(httpx.ConnectError):
            client.get(f"{LEASES.format(namespace=namespace)}/any")

        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(PortInUseError, match=f"port {port} .* in use"):
                control_plane.start_apiserver()
        assert not control_plane.apiserver_running

        control_plane.start_apiserver()
        assert control_plane.server == server
        with control_plane.http_client(user.token) as client:
            assert client.get(f"{LEASES.format(namespace=namespace)}/any").status_code == 404
    finally:
        control_plane.ensure_running()


def up(control_plane: ControlPlane) -> tuple[bool, bool]:
    """Whether etcd and the apiserver run (a call: the answer changes under faults)."""
    return control_plane.etcd_running, control_plane.apiserver_running


def test_without_etcd_requests_fail_and_data_is_back_with_it(
    control_plane: ControlPlane, admin: httpx.Client, namespace: str
) -> None:
    leases = LEASES.format(namespace=namespace)
    created = admin.post(leases, json=lease("durable", "alice")).json()
    _, apiserver_pid = control_plane.pids
    try:
        control_plane.stop_etcd()
        assert up(control_plane) == (False, True)
        try:
            answer = admin.get(f"{leases}/durable", timeout=2)
        except httpx.TimeoutException:
            pass  # what a GET usually does: wait for etcd
        else:
            assert answer.status_code >= 500, answer.text

        control_plane.start_etcd()
        assert control_plane.pids[1] == apiserver_pid  # the same apiserver reconnected
        read = admin.get(f"{leases}/durable")
        assert read.status_code == 200
        assert read.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        assert admin.post(leases, json=lease("after", "bob")).status_code == 201

        # a crash (SIGKILL, no graceful stop) loses no acknowledged write either, and
        # ensure_running() brings a dead process back
        os.killpg(control_plane.pids[0], signal.SIGKILL)
        for _ in range(500):  # SIGKILL takes effect at once; its exit is seen a moment later
            if up(control_plane) == (False, True):
                break
            time.sleep(0.01)
        assert up(control_plane) == (False, True)
        control_plane.ensure_running()
        assert up(control_plane) == (True, True)
        assert admin.get(f"{leases}/after").json()["spec"]["holderIdentity"] == "bob"
    finally:
        control_plane.ensure_running()


def test_paused_apiserver_answers_nothing_until_resumed(
    control_plane: ControlPlane, admin: httpx.Client, namespace: str
) -> None:
    path = f"{LEASES.format(namespace=namespace)}/any"
    try:
        with control_plane.paused_apiserver():
            assert control_plane.apiserver_running
            with pytest.raises(httpx.TimeoutException):
                admin.get(path, timeout=0.5)
        assert admin.get(path, timeout=10).status_code == 404

        with pytest.raises(RuntimeError, match="inside"), control_plane.paused_apiserver():
            raise RuntimeError("inside")
        assert admin.get(path, timeout=10).status_code == 404  # resumed all the same
    finally:
        control_plane.ensure_running()
