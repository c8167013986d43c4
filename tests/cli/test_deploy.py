"""deploy/: the manifests validate on a real apiserver, grant exactly the documented rights,
and the programs they run work with those rights and nothing more."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from trio_election._controlplane._kubeconfig import write_kubeconfig

from ._runner import child_env, wait_until

if TYPE_CHECKING:
    from trio_election.testing import ControlPlane

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = (
    "rbac.yaml",
    "deployment-command.yaml",
    "deployment-library.yaml",
    "deployment-sidecar.yaml",
)
EXAMPLE_NAMESPACE = "trio-election-example"
ACCOUNT = "my-app"
GRANTED = {
    "leases.coordination.k8s.io": ["get", "create", "update", "patch", "watch", "list"],
    "events": ["create"],
}
REFUSED = {"leases.coordination.k8s.io": ["delete", "deletecollection"], "events": ["get"]}


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
    assert dry.stdout.count("(server dry run)") == 6, dry.stdout  # 3 RBAC objects, 3 Deployments
    done = control_plane.kubectl("apply", *files)
    assert done.returncode == 0, done.stderr
    return namespace, folder


def can_i(control_plane: ControlPlane, namespace: str, verb: str, resource: str) -> bool:
    done = control_plane.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{ACCOUNT}",
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


@pytest.fixture(scope="module")
def account_kubeconfig(control_plane: ControlPlane, deployed: tuple[str, Path]) -> Path:
    """A kubeconfig with a token of the Deployment's ServiceAccount: what a pod gets."""
    namespace, folder = deployed
    done = control_plane.kubectl("create", "token", ACCOUNT, "-n", namespace)
    assert done.returncode == 0, done.stderr
    return write_kubeconfig(
        folder / "account.kubeconfig",
        server=control_plane.server,
        ca_pem=control_plane.ca_pem,
        user=ACCOUNT,
        token=done.stdout.strip(),
        namespace=namespace,
    )


def container(name: str) -> dict[str, Any]:
    deployment = yaml.safe_load((DEPLOY / name).read_text())
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == ACCOUNT
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
