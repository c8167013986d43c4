"""Fencing on the real apiserver: the policy of ``trio-election fence policy`` refuses a stale
leader's writes and deletes, and lets the current leader's through.

The leaders are candidate processes (`_fenced_writer.py`) with exactly the RBAC of
deploy/rbac.yaml on the Lease, plus the verbs on ConfigMaps that their own work needs; the
policy is applied by the administrator. A leader is frozen with SIGSTOP until a successor
leads; the successor's stamped write being accepted shows that the policy sees the new
term, so the old leader's writes after it are judged against it (no sleeps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest
import yaml
from harness.event_lines import EventProcess
from harness.fenced_store import FencedStore
from harness.toxiproxy import Toxiproxy

import trio_election as te
from trio_election._controlplane._binaries import find_toxiproxy
from trio_election._controlplane._kubeconfig import write_kubeconfig
from trio_election.kube import KubeClient, KubeConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("_fenced_writer.py")
CONFIGMAP_VERBS = ["get", "create", "update", "patch", "delete"]


def lease_verbs() -> list[str]:
    """The verbs deploy/rbac.yaml grants the app on leases."""
    for document in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()):
        if document["kind"] == "Role":
            for rule in document["rules"]:
                if rule["resources"] == ["leases"]:
                    verbs: list[str] = rule["verbs"]
                    return verbs
    raise AssertionError("deploy/rbac.yaml grants nothing on leases")


def fence_policy(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "trio_election", "fence", "policy", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def apply(control_plane: ControlPlane, text: str, folder: Path, *flags: str) -> str:
    path = folder / "policy.yaml"
    path.write_text(text)
    done = control_plane.kubectl("apply", *flags, "-f", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


def configmap(
    name: str, *, fence: te.Fence | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {"value": "x"},
    }
    return body if fence is None else fence.stamp(body)


def wait_until_enforced(control_plane: ControlPlane, user: TestUser, fence: te.Fence) -> None:
    """Until an unstamped fenced create (dry run) is refused: a new policy takes a moment."""
    body = configmap("probe", labels=fence.labels)
    path = f"/api/v1/namespaces/{user.namespace}/configmaps"
    deadline = time.monotonic() + 30
    with control_plane.http_client(user.token) as client:
        while time.monotonic() < deadline:
            answer = client.post(path, params={"dryRun": "All"}, json=body)
            if answer.status_code in (403, 422):
                assert "ValidatingAdmissionPolicy" in answer.text, answer.text
                return
            assert answer.status_code == 201, answer.text
            time.sleep(0.05)  # the poll's interval; the refusal is what is waited for
    raise AssertionError("the policy was not enforced within 30 s")


class Fenced:
    def __init__(self, control_plane: ControlPlane, namespace: str, user: TestUser) -> None:
        self.control_plane = control_plane
        self.namespace = namespace
        self.user = user
        self.lock = f"leases/{namespace}/app"

    def get(self, name: str) -> dict[str, Any] | None:
        with self.control_plane.http_client() as admin:
            answer = admin.get(f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


@pytest.fixture(scope="module")
def fenced(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Fenced:
    namespace = control_plane.create_namespace("fence")
    user = control_plane.user(
        "app",
        namespace=namespace,
        verbs={"leases": lease_verbs(), "configmaps": CONFIGMAP_VERBS, "events": ["create"]},
    )
    fenced = Fenced(control_plane, namespace, user)
    text = fence_policy(fenced.lock, "--resource", "configmaps")
    apply(control_plane, text, tmp_path_factory.mktemp("policy"))
    wait_until_enforced(control_plane, user, te.Fence(fenced.lock, "probe", 0))
    return fenced


def leading(process: EventProcess) -> int:
    event = process.find("started-leading", within=30)
    assert event is not None, process.events
    _, term = event.arg.split()
    return int(term)


def test_the_policy_applies_with_server_dry_run(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    text = fence_policy(
        "leases/default/my-app",
        "--resource",
        "configmaps",
        "--resource",
        "deployments.apps",
        "--resource",
        "deployments/status.apps",
        "--writer",
        "system:serviceaccount:default:my-app",
    )
    out = apply(control_plane, text, tmp_path, "--dry-run=server")
    assert out.count("(server dry run)") == 2, out


def test_deploy_holds_the_commands_policy(control_plane: ControlPlane, tmp_path: Path) -> None:
    shown = (ROOT / "deploy" / "fence-policy.yaml").read_text()
    assert shown == fence_policy(
        "leases/trio-election-example/my-app-library", "--resource", "configmaps"
    )
    out = apply(control_plane, shown, tmp_path, "--dry-run=server")
    assert out.count("(server dry run)") == 2, out


class Start(Protocol):
    def __call__(
        self, lock: str, identity: str, kubeconfig: Path | None = None
    ) -> EventProcess: ...


@pytest.fixture
def start(fenced: Fenced, tmp_path: Path) -> Iterator[Start]:
    """Starts a candidate on a lock with an identity (as the app's account, through
    `kubeconfig` if given); all are killed at the end."""
    processes: list[EventProcess] = []

    def start(lock: str, identity: str, kubeconfig: Path | None = None) -> EventProcess:
        config = kubeconfig or fenced.user.kubeconfig
        process = EventProcess(
            [sys.executable, str(WRITER), lock, identity],
            log=tmp_path / f"{identity}.log",
            env={**os.environ, "KUBECONFIG": str(config)},
            name=identity,
            stdin=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()


def run(process: EventProcess, line: str) -> None:
    process.tell(line)  # each line is given once per process
    assert process.find("done", line, within=30) is not None, process.events


def test_a_stale_leaders_writes_and_deletes_are_refused(fenced: Fenced, start: Start) -> None:
    old = start(fenced.lock, "old")
    old_term = leading(old)
    run(old, "write shared from-old")
    run(old, "write mine from-old")
    old.send(signal.SIGSTOP)
    new = start(fenced.lock, "new")
    new_term = leading(new)
    assert new_term > old_term
    # accepted only if the policy sees the new term: the stale writes below are judged
    # against it
    run(new, "write shared from-new")
    for line in (
        "write shared from-old-again",
        "delete mine",
        "delete-only mine",
        "write fresh from-old",
    ):
        old.tell(line)
    old.send(signal.SIGCONT)
    refusals = [old.find("refused", within=30, count=n) for n in (1, 2, 3, 4)]
    assert None not in refusals, old.events
    assert old.count("done") == 2
    lock = fenced.lock
    for event in refusals:
        assert event is not None
        assert event.arg.startswith("403 "), event.arg
        assert f"fenced by {lock}: stale leader" in event.arg, event.arg
        assert f"with term {old_term} of old" in event.arg, event.arg
        assert f"the Lease is in term {new_term} held by new" in event.arg, event.arg
    assert refusals[2] is not None
    assert "the object to delete is stamped" in refusals[2].arg

    shared = fenced.get("shared")
    assert shared is not None
    assert shared["data"] == {"value": "from-new"}
    assert shared["metadata"]["annotations"] == te.Fence(lock, "new", new_term).annotations
    mine = fenced.get("mine")
    assert mine is not None, "a stale leader deleted an object"
    assert mine["data"] == {"value": "from-old"}
    assert fenced.get("fresh") is None

    # the successor restamps the object in its own term and deletes it
    run(new, "delete mine")
    assert fenced.get("mine") is None


def test_a_stale_leaders_write_to_a_fenced_store_changes_nothing(
    fenced: Fenced, start: Start, tmp_path: Path
) -> None:
    lock = f"leases/{fenced.namespace}/store"
    path = tmp_path / "store.sqlite"
    old = start(lock, "old")
    old_term = leading(old)
    run(old, f"store {path} owner old")
    old.send(signal.SIGSTOP)
    new = start(lock, "new")
    new_term = leading(new)
    run(new, f"store {path} owner new")
    old.tell(f"store {path} owner old-again")
    old.send(signal.SIGCONT)
    refused = old.find("refused", within=30)
    assert refused is not None, old.events
    assert refused.arg == f"stale term {old_term}: the store is at term {new_term}"
    store = FencedStore(path)
    try:
        assert store.read("owner") == ("new", new_term)
        assert store.term == new_term
    finally:
        store.close()


def post(control_plane: ControlPlane, token: str | None, namespace: str, body: Any) -> Any:
    with control_plane.http_client(token) as client:
        return client.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body)


def test_who_and_what_is_judged(fenced: Fenced) -> None:
    """The writers' (the lock namespace's service accounts') unstamped writes of fenced
    objects are refused; anyone else's (here the administrator's) and writes of unlabelled
    objects are not judged."""
    plane, namespace, token = fenced.control_plane, fenced.namespace, fenced.user.token
    labels = te.Fence(fenced.lock, "x", 0).labels
    refused = post(plane, token, namespace, configmap("unstamped", labels=labels))
    assert refused.status_code == 403, refused.text
    assert (
        f"fenced by {fenced.lock}: the object carries no trio-election.io/holder and "
        "trio-election.io/term annotations: write it with leadership.fence.stamp(body)"
    ) in refused.json()["message"]
    assert post(plane, token, namespace, configmap("unfenced")).status_code == 201
    by_admin = post(plane, None, namespace, configmap("by-admin", labels=labels))
    assert by_admin.status_code == 201, by_admin.text


def test_a_missing_lease_refuses_every_fenced_write(
    control_plane: ControlPlane, fenced: Fenced, tmp_path: Path
) -> None:
    lock = f"leases/{fenced.namespace}/never-created"
    apply(control_plane, fence_policy(lock, "--resource", "configmaps"), tmp_path)
    fence = te.Fence(lock, "anyone", 0)
    wait_until_enforced(control_plane, fenced.user, fence)
    refused = post(control_plane, fenced.user.token, fenced.namespace, configmap("m", fence=fence))
    assert refused.status_code == 422, refused.text
    assert "no params found" in refused.json()["message"]


async def test_every_term_is_the_leases_transitions_after_our_acquisition(
    fenced: Fenced,
) -> None:
    """What the policy compares: our term is the Lease's `leaseTransitions` as the apiserver
    stores it, and it grows with every acquisition, also the same holder's next one."""
    lock = f"leases/{fenced.namespace}/terms"
    terms: list[tuple[int, int, str]] = []
    async with (
        KubeClient(KubeConfig.load(fenced.user.kubeconfig)) as client,
        te.open_election(lock, identity="me", client=client, stop_on_sigterm=False) as election,
    ):
        for _ in range(3):
            async with election.leading() as leadership:
                with fenced.control_plane.http_client() as admin:
                    lease = admin.get(
                        f"/apis/coordination.k8s.io/v1/namespaces/{fenced.namespace}/leases/terms"
                    ).json()
                spec = lease["spec"]
                assert leadership.fence == te.Fence(lock, "me", leadership.term)
                terms.append((leadership.term, spec["leaseTransitions"], spec["holderIdentity"]))
    assert terms == [(0, 0, "me"), (1, 1, "me"), (2, 2, "me")]


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[Toxiproxy]:
    if find_toxiproxy() is None:
        message = "Toxiproxy's server is missing: run `python scripts/build_control_plane.py`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    with Toxiproxy.start() as server:
        yield server


def test_a_cut_off_leaders_write_after_the_partition_heals_is_refused(
    fenced: Fenced, start: Start, toxiproxy: Toxiproxy, tmp_path: Path
) -> None:
    lock = fenced.lock
    server = httpx.URL(fenced.control_plane.server)
    proxy = toxiproxy.create_proxy("fence-old", upstream=f"{server.host}:{server.port}")
    kubeconfig = write_kubeconfig(
        tmp_path / "old.kubeconfig",
        server=f"https://{proxy.listen}",
        ca_pem=fenced.control_plane.ca_pem,
        user="app",
        token=fenced.user.token,
        namespace=fenced.namespace,
    )
    try:
        old = start(lock, "old", kubeconfig)
        old_term = leading(old)
        name = "cut-off-object"
        run(old, f"write {name} from-old")
        proxy.set_enabled(False)  # every connection closed, new ones refused
        new = start(lock, "new")
        new_term = leading(new)
        run(new, f"write {name} from-new")
        proxy.set_enabled(True)
        old.tell(f"write {name} from-old-again")
        refused = old.find("refused", within=60)
        assert refused is not None, old.events
        assert refused.arg.startswith("403 "), refused.arg
        assert f"with term {old_term} of old" in refused.arg, refused.arg
        assert f"the Lease is in term {new_term} held by new" in refused.arg, refused.arg
        found = fenced.get(name)
        assert found is not None
        assert found["data"] == {"value": "from-new"}
    finally:
        proxy.delete()
