"""`trio-election run --http`: the leader's name, /healthz and /metrics, on a real apiserver."""

from __future__ import annotations

import re
import signal
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from ._runner import FAST_TIMING, Runner, get, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane, TestUser

# quick to go stale: /healthz fails 2 s + 0.5 s after the last renew
TIMING = (
    *FAST_TIMING,
    "--leader-elect-lease-duration=2s",
    "--leader-elect-renew-deadline=1500ms",
    "--healthz-tolerance=0.5s",
)


@pytest.fixture
def user(control_plane: ControlPlane) -> TestUser:
    namespace = control_plane.create_namespace("cli-http")
    verbs = {
        "leases": ["get", "create", "update", "patch", "watch", "list"],
        "events": ["create"],
    }
    return control_plane.user("sidecar", namespace=namespace, verbs=verbs)


@pytest.fixture
def pair(user: TestUser, tmp_path: Path) -> Iterator[tuple[Runner, Runner]]:
    """A leader running a command, and a command-less follower (the sidecar form)."""
    lock = f"leases/{user.namespace}/web"
    common = ["--kubeconfig", str(user.kubeconfig), "--http", "127.0.0.1:0", *TIMING]
    leader = Runner(
        tmp_path,
        "web-a",
        ["run", lock, "--identity", "web-a", "--again", *common, "--", "sleep", "60"],
    )
    follower: Runner | None = None
    try:
        wait_until("web-a to lead", lambda: "starting sleep" in leader.stderr() or None)
        follower = Runner(tmp_path, "web-b", ["run", lock, "--identity", "web-b", *common])
        yield leader, follower
    finally:
        leader.close()
        if follower is not None:
            follower.close()


def metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"no {name}{{{labels}}} in:\n{text}"
    return float(found.group(1))


def test_leader_name_health_and_metrics(pair: tuple[Runner, Runner]) -> None:
    leader, follower = pair
    a, b = leader.http_base(), follower.http_base()
    for base in (a, b):
        response = get(f"{base}/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"name": "web-a"}
        assert get(f"{base}/healthz").status_code == 200
    assert get(f"{a}/nope").status_code == 404
    assert httpx.post(f"{a}/", timeout=5).status_code == 405

    text = get(f"{a}/metrics").text
    assert metric(text, "leader_election_master_status", 'name="web"') == 1
    assert metric(text, "leader_election_slowpath_total", 'name="web"') >= 0
    assert metric(text, "trio_election_terms_total", 'name="web"') == 1
    wait_until(
        "a renewal",
        lambda: (
            metric(get(f"{a}/metrics").text, "trio_election_renewals_total", 'name="web"') or None
        ),
    )
    assert metric(text, "trio_election_command_running", 'name="web"') == 1
    assert metric(text, "trio_election_leader_info", 'name="web",leader="web-a"') == 1
    assert "# TYPE leader_election_master_status gauge" in text
    assert "# TYPE leader_election_slowpath_total counter" in text
    follower_text = get(f"{b}/metrics").text
    assert metric(follower_text, "leader_election_master_status", 'name="web"') == 0
    assert metric(follower_text, "trio_election_command_running", 'name="web"') == 0
    assert metric(follower_text, "trio_election_leader_info", 'name="web",leader="web-a"') == 1

    follower.terminate(signal.SIGTERM)
    assert follower.wait() == 143


def test_healthz_fails_while_the_leader_cannot_renew(
    pair: tuple[Runner, Runner], control_plane: ControlPlane
) -> None:
    leader, follower = pair
    a, b = leader.http_base(), follower.http_base()
    wait_until("the follower to see the leader", lambda: get(f"{b}/").json()["name"] or None)
    control_plane.pause_apiserver()
    try:
        paused = time.monotonic()
        assert get(f"{a}/healthz").status_code == 200  # renewals are not overdue yet
        wait_until("/healthz to fail", lambda: get(f"{a}/healthz").status_code == 500 or None)
        failed_after = time.monotonic() - paused
        response = get(f"{a}/healthz")
        assert "last renewed" in response.text
        assert "lease duration 2 s + tolerance 0.5 s" in response.text
        # not before lease duration + tolerance since the last renew (at most a retry
        # period before the pause)
        assert failed_after > 2.5 - 0.5 - 0.1
        assert get(f"{b}/healthz").status_code == 200  # a follower is never unhealthy
        text = get(f"{a}/metrics").text
        # the term was lost at its renew deadline and the command stopped
        assert metric(text, "trio_election_command_running", 'name="web"') == 0
        assert metric(text, "trio_election_command_exits_total", 'name="web",status="143"') == 1
    finally:
        control_plane.resume_apiserver()
    wait_until("/healthz to recover", lambda: get(f"{a}/healthz").status_code == 200 or None)
