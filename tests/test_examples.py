"""The programs in examples/ run as written and do what their docstrings say."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.event_lines import EventProcess

if TYPE_CHECKING:
    from trio_election.testing import ControlPlane

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}


def run(name: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_singleton_worker_hands_over_after_release() -> None:
    lines = run("singleton_worker.py")
    workers = [line.split(":")[0] for line in lines if "working" in line]
    # one replica does all its rounds, then the other: never interleaved
    assert len(workers) == 6
    assert workers[:3] == [workers[0]] * 3
    assert workers[3:] == [workers[3]] * 3
    assert workers[0] != workers[3]
    assert lines.index(f"{workers[0]}: done, releasing the lock") < lines.index(
        f"{workers[3]}: working, round 0"
    )


def test_follow_the_leader_routes_and_leads_many_terms() -> None:
    lines = run("follow_the_leader.py")
    terms = [line for line in lines if "leading term" in line]
    assert len(terms) == 4
    assert [int(line.rsplit(" ", 1)[1]) for line in terms] == [0, 1, 2, 3]
    for term_line in terms:
        name = term_line.split(":")[0]
        # the other replica is told where requests go
        other = "replica-b" if name == "replica-a" else "replica-a"
        assert f"{other}: requests now go to {name}" in lines


def test_clientgo_callbacks() -> None:
    lines = run("clientgo_callbacks.py")
    assert lines[-1] == "leader now: (none); is_leader=False"
    assert "started leading, term 0" in lines
    assert lines.index("started leading, term 0") < lines.index("stopped leading")
    assert "new leader: example" in lines


def test_memory_demo_shows_failover_and_handover() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_election.demo", "--memory"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    failover = float(out.split("took over ", 1)[1].split(" s after the kill")[0])
    handover = float(out.split("took over ", 2)[2].split(" s after the release")[0])
    # the lease (4 s) runs from the killed leader's last renew, up to one retry period (1 s)
    # before the kill; then the expiry delay and scheduling
    assert 4.0 - 1.0 <= failover <= 4.0 + 1.0
    assert handover < 0.5  # a release is taken over at once
    assert "never two leaders at once" in out


def test_kopf_operator_handles_labelled_configmaps_and_exits_143_on_sigterm(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """One replica, the admin's kubeconfig, kubectl as a user would; the two-replica
    handover is tests/control_plane/test_kopf.py."""
    namespace = control_plane.create_namespace("example")
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXIES}
    env["KUBECONFIG"] = str(control_plane.admin_kubeconfig)
    replica = EventProcess(
        [sys.executable, str(EXAMPLES / "kopf_operator.py"), namespace, "--identity=only"],
        log=tmp_path / "operator.log",
        env=env,
        name="kopf-operator",
    )
    try:
        assert replica.find("started-leading", "only", within=30), replica.events
        created = control_plane.kubectl(
            f"--namespace={namespace}", "create", "configmap", "settings", "--from-literal=a=1"
        )
        assert created.returncode == 0, created.stderr
        labelled = control_plane.kubectl(
            f"--namespace={namespace}",
            "label",
            "configmap",
            "settings",
            "kopf-operator.example.com/watched=yes",
        )
        assert labelled.returncode == 0, labelled.stderr
        assert replica.find("handled", "settings", within=20), replica.events
        replica.send(signal.SIGTERM)
        assert replica.find("process-exit", "143", within=20), replica.events
    finally:
        replica.kill()
