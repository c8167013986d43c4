"""deploy/: the manifests validate on a real apiserver, grant exactly the documented rights,
and the programs they run work with those rights and nothing more."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from trio_election._controlplane._kubeconfig import write_kubeconfig
from trio_election._shards._kube import GROUP_LABEL

from ._runner import child_env, wait_until

if TYPE_CHECKING:
    from trio_election.testing import ControlPlane

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = (
    "rbac.yaml",
    "deployment-command.yaml",
    "deployment-library.yaml",
    "deployment-sidecar.yaml",
    "rbac-shards.yaml",
    "deployment-shards-command.yaml",
    "deployment-shards-library.yaml",
)
EXAMPLE_NAMESPACE = "trio-election-example"
ACCOUNT = "my-app"
GRANTED = {
    "leases.coordination.k8s.io": ["get", "create", "update", "patch", "watch", "list"],
    "events": ["create"],
}
REFUSED = {"leases.coordination.k8s.io": ["delete", "deletecollection"], "events": ["get"]}
SHARDS_ACCOUNT = "my-app-shards"
SHARDS_GRANTED = {
    "leases.coordination.k8s.io": ["get", "create", "update", "patch", "watch", "list", "delete"],
    "events": ["create"],
}
SHARDS_REFUSED = {"leases.coordination.k8s.io": ["deletecollection"], "events": ["get"]}


@pytest.fixture(scope="module")
def deployed(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """The manifests, moved to a fresh namespace and applied; the folder they were written to."""
    namespace = control_plane.create_namespace("deploy")
    folder = tmp_path_factory.mktemp("deploy")
    files: list[str] = []
    for name in MANIFESTS:
        text = (DEPLOY / name).read_text()
        assert f"namespace: {EXAMPLE_NAMESPACE}" in text, name
        (folder / name).write_text(text.replace(EXAMPLE_NAMESPACE, namespace))
        files += ["-f", str(folder / name)]
    dry = control_plane.kubectl("apply", "--dry-run=server", *files)
    assert dry.returncode == 0, dry.stderr
    # two sets of 3 RBAC objects, 5 Deployments
    assert dry.stdout.count("(server dry run)") == 11, dry.stdout
    done = control_plane.kubectl("apply", *files)
    assert done.returncode == 0, done.stderr
    return namespace, folder


def can_i(
    control_plane: ControlPlane,
    namespace: str,
    verb: str,
    resource: str,
    account: str = ACCOUNT,
) -> bool:
    done = control_plane.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{account}",
    )
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def test_the_role_grants_exactly_the_documented_verbs(
    control_plane: ControlPlane, deployed: tuple[str, Path]
) -> None:
    namespace, _ = deployed
    # a new binding takes a moment to be in effect
    wait_until(
        "the binding",
        lambda: can_i(control_plane, namespace, "get", "leases.coordination.k8s.io") or None,
        every=0.1,
    )
    for resource, verbs in GRANTED.items():
        for verb in verbs:
            assert can_i(control_plane, namespace, verb, resource), f"{verb} {resource}"
    for resource, verbs in REFUSED.items():
        for verb in verbs:
            assert not can_i(control_plane, namespace, verb, resource), f"{verb} {resource}"
    assert not can_i(control_plane, "default", "get", "leases.coordination.k8s.io")


def test_the_shard_groups_role_grants_one_elections_verbs_and_delete(
    control_plane: ControlPlane, deployed: tuple[str, Path]
) -> None:
    namespace, _ = deployed
    leases = "leases.coordination.k8s.io"
    wait_until(
        "the binding",
        lambda: can_i(control_plane, namespace, "get", leases, SHARDS_ACCOUNT) or None,
        every=0.1,
    )
    for resource, verbs in SHARDS_GRANTED.items():
        for verb in verbs:
            assert can_i(control_plane, namespace, verb, resource, SHARDS_ACCOUNT), verb
    for resource, verbs in SHARDS_REFUSED.items():
        for verb in verbs:
            assert not can_i(control_plane, namespace, verb, resource, SHARDS_ACCOUNT), verb
    assert not can_i(control_plane, "default", "get", leases, SHARDS_ACCOUNT)


def kubeconfig_of(control_plane: ControlPlane, deployed: tuple[str, Path], account: str) -> Path:
    """A kubeconfig with a token of the ServiceAccount `account`: what a pod gets."""
    namespace, folder = deployed
    done = control_plane.kubectl("create", "token", account, "-n", namespace)
    assert done.returncode == 0, done.stderr
    return write_kubeconfig(
        folder / f"{account}.kubeconfig",
        server=control_plane.server,
        ca_pem=control_plane.ca_pem,
        user=account,
        token=done.stdout.strip(),
        namespace=namespace,
    )


@pytest.fixture(scope="module")
def account_kubeconfig(control_plane: ControlPlane, deployed: tuple[str, Path]) -> Path:
    return kubeconfig_of(control_plane, deployed, ACCOUNT)


@pytest.fixture(scope="module")
def shards_kubeconfig(control_plane: ControlPlane, deployed: tuple[str, Path]) -> Path:
    return kubeconfig_of(control_plane, deployed, SHARDS_ACCOUNT)


def container(name: str, account: str = ACCOUNT) -> dict[str, Any]:
    deployment = yaml.safe_load((DEPLOY / name).read_text())
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account
    first: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return first


def pod_env(spec: dict[str, Any], kubeconfig: Path) -> dict[str, str]:
    env = child_env()
    env.update({item["name"]: item["value"] for item in spec.get("env", []) if "value" in item})
    env["KUBECONFIG"] = str(kubeconfig)
    return env


def events(control_plane: ControlPlane, namespace: str) -> str:
    return control_plane.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout


def test_the_command_form_runs_with_the_accounts_rights(
    control_plane: ControlPlane, deployed: tuple[str, Path], account_kubeconfig: Path
) -> None:
    namespace, folder = deployed
    spec = container("deployment-command.yaml")
    # loopback and a free port here; in a pod every interface, for the kubelet's probes
    args = ["--http=127.0.0.1:0" if arg == "--http=:4040" else arg for arg in spec["args"]]
    at = args.index("--")
    assert args[0] == "trio-election"
    assert args[at + 1 :] == ["python", "/app/worker.py"]
    argv = [
        sys.executable,
        "-m",
        "trio_election",
        *args[1 : at + 1],
        sys.executable,
        str(DEPLOY / "worker.py"),
    ]
    out = folder / "command.out"
    with out.open("w") as stdout:
        runner = subprocess.Popen(
            argv,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=pod_env(spec, account_kubeconfig),
        )
    try:
        wait_until("the worker", lambda: "worker: leading leases/" in out.read_text() or None)
        assert f"worker: leading leases/{namespace}/my-app (term 0)" in out.read_text()
        wait_until(
            "the Event",
            lambda: "became leader" in events(control_plane, namespace) or None,
            every=0.2,
        )
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 143, err
    assert "worker: SIGTERM, finishing up" in out.read_text()
    assert "error" not in err.lower(), err


def test_the_library_form_runs_with_the_accounts_rights(
    control_plane: ControlPlane, deployed: tuple[str, Path], account_kubeconfig: Path
) -> None:
    namespace, _ = deployed
    spec = container("deployment-library.yaml")
    assert spec["args"] == ["python", "/app/app.py"]
    app = subprocess.Popen(
        [sys.executable, str(DEPLOY / "app.py")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=pod_env(spec, account_kubeconfig),
    )
    try:
        lock = f"leases/{namespace}/my-app-library"

        def leading() -> bool | None:
            done = control_plane.kubectl(
                "get",
                "lease",
                "my-app-library",
                "-n",
                namespace,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            )
            return bool(done.stdout) or None

        wait_until(f"the app to lead {lock}", leading, every=0.2)
        app.send_signal(signal.SIGTERM)
        _, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 143, err
    assert "working as the leader (term 0)" in err
    holder = control_plane.kubectl(
        "get", "lease", "my-app-library", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"
    )
    assert holder.stdout == ""  # released on SIGTERM


def leases(control_plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    done = control_plane.kubectl("get", "leases", "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def group_leases(
    control_plane: ControlPlane, namespace: str, group: str, shards: int
) -> tuple[list[str | None], list[str]]:
    """The holder of each shard Lease of `group`, and its members' identities."""
    items = leases(control_plane, namespace)
    holder_of: dict[str, str | None] = {}
    members: list[str] = []
    for item in items:
        spec: dict[str, Any] = item.get("spec") or {}
        labels: dict[str, str] = item["metadata"].get("labels") or {}
        holder_of[item["metadata"]["name"]] = spec.get("holderIdentity") or None
        if labels.get(GROUP_LABEL) == group:
            members.append(spec["holderIdentity"])
    holders = [holder_of.get(f"{group}-shard-{i}") for i in range(shards)]
    members.sort()
    return holders, members


SMALL = 3
"""The shard count the shard forms run with here (the manifests say 16): one worker process
per shard, on a small machine."""


def test_the_shard_command_form_runs_with_the_accounts_rights(
    control_plane: ControlPlane, deployed: tuple[str, Path], shards_kubeconfig: Path
) -> None:
    namespace, folder = deployed
    spec = container("deployment-shards-command.yaml", SHARDS_ACCOUNT)
    assert "--shards=16" in spec["args"]
    args = [
        "--http=127.0.0.1:0"
        if arg == "--http=:4040"
        else f"--shards={SMALL}"
        if arg == "--shards=16"
        else arg
        for arg in spec["args"]
    ]
    at = args.index("--")
    assert args[0] == "trio-election"
    assert args[at + 1 :] == ["python", "/app/shard_worker.py"]
    argv = [
        sys.executable,
        "-m",
        "trio_election",
        *args[1 : at + 1],
        sys.executable,
        str(DEPLOY / "shard_worker.py"),
    ]
    out = folder / "shards-command.out"
    with out.open("w") as stdout:
        runner = subprocess.Popen(
            argv,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=pod_env(spec, shards_kubeconfig),
        )
    try:
        lock = f"leases/{namespace}/my-app-shards"
        started = [
            f"worker {shard}: leading shard {shard} of {SMALL} ({lock}-shard-{shard}, term 0)"
            for shard in range(SMALL)
        ]
        wait_until(
            "a worker per shard",
            lambda: all(line in out.read_text() for line in started) or None,
        )
        holders, members = group_leases(control_plane, namespace, "my-app-shards", SMALL)
        assert len(members) == 1
        assert holders == members * SMALL
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 143, err
    for shard in range(SMALL):
        assert f"worker {shard}: SIGTERM, finishing up" in out.read_text()
    assert "error" not in err.lower(), err
    assert "warning" not in err.lower(), err
    # it left the group (its membership Lease deleted) and released every shard
    assert group_leases(control_plane, namespace, "my-app-shards", SMALL) == ([None] * SMALL, [])


def test_the_shard_library_form_runs_with_the_accounts_rights(
    control_plane: ControlPlane, deployed: tuple[str, Path], shards_kubeconfig: Path
) -> None:
    namespace, _ = deployed
    spec = container("deployment-shards-library.yaml", SHARDS_ACCOUNT)
    assert spec["args"] == ["python", "/app/shards_app.py"]
    env = pod_env(spec, shards_kubeconfig)
    assert env["SHARDS"] == "16"
    env["SHARDS"] = str(SMALL)
    app = subprocess.Popen(
        [sys.executable, str(DEPLOY / "shards_app.py")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    group = "my-app-shards-library"
    try:

        def leading() -> bool | None:
            holders, members = group_leases(control_plane, namespace, group, SMALL)
            return (len(members) == 1 and holders == members * SMALL) or None

        wait_until(f"the app to lead every shard of {group}", leading, every=0.2)
        app.send_signal(signal.SIGTERM)
        _, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 143, err
    for shard in range(SMALL):
        assert f"working on shard {shard} of {SMALL} (term 0)" in err
    assert "WARNING" not in err, err
    assert group_leases(control_plane, namespace, group, SMALL) == ([None] * SMALL, [])
