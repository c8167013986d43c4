"""`trio-election run` and `status` end to end: real runner processes on a real apiserver."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from ._runner import (
    FAST_TIMING,
    Runner,
    child_env,
    command,
    read_lines,
    status_json,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane, TestUser

LEASE_VERBS = {
    "leases": ["get", "create", "update", "patch", "watch", "list"],
    "events": ["create"],
}


@pytest.fixture
def user(control_plane: ControlPlane) -> TestUser:
    namespace = control_plane.create_namespace("cli")
    return control_plane.user("runner", namespace=namespace, verbs=LEASE_VERBS)


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:
        runner.close()


def marker_command(markers: Path, then: str = "exec sleep 60") -> list[str]:
    """A child that appends who it runs for to `markers`, then `then`."""
    line = '"$TRIO_ELECTION_IDENTITY $TRIO_ELECTION_TERM $TRIO_ELECTION_LOCK"'
    return ["sh", "-c", f"echo {line} >> {markers}; {then}"]


def start(
    runners: list[Runner],
    folder: Path,
    name: str,
    lock: str,
    user: TestUser,
    *options: str,
    cmd: list[str] | None = None,
) -> Runner:
    args = [
        "run",
        lock,
        "--identity",
        name,
        "--kubeconfig",
        str(user.kubeconfig),
        *FAST_TIMING,
        *options,
    ]
    if cmd is not None:
        args += ["--", *cmd]
    runner = Runner(folder, name, args)
    runners.append(runner)
    return runner


def test_only_the_leader_runs_the_command_and_sigterm_hands_over_at_once(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    lock = f"leases/{user.namespace}/singleton"
    markers = tmp_path / "markers"
    watched = tmp_path / "watch.out"
    with watched.open("w") as out:
        watch = subprocess.Popen(
            command("status", lock, "--watch", "--kubeconfig", str(user.kubeconfig)),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
    try:
        wait_until("the first status", lambda: read_lines(watched) or None)
        first = start(runners, tmp_path, "alpha", lock, user, cmd=marker_command(markers))
        wait_until("alpha's command", lambda: read_lines(markers) or None)
        # -v: the library's INFO lines, among them whom it sees leading
        second = start(runners, tmp_path, "beta", lock, user, "-v", cmd=marker_command(markers))
        wait_until("beta to campaign", lambda: "campaigning" in second.stderr() or None)
        # it has read the lock and follows alpha (and it leads only once, in term 1, below)
        wait_until(
            "beta to follow alpha", lambda: "beta sees leader alpha" in second.stderr() or None
        )
        assert read_lines(markers) == [f"alpha 0 {lock}"]

        first.terminate(signal.SIGTERM)
        stopped = time.monotonic()
        wait_until("beta's command", lambda: len(read_lines(markers)) == 2 or None)
        handover = time.monotonic() - stopped
        assert read_lines(markers)[1] == f"beta 1 {lock}"
        # at once, not when a lock left unreleased expires (lease 4 s); the margin is a
        # loaded machine's
        assert handover < 2.5, f"beta's command started {handover:.2f} s after the SIGTERM"
        assert first.wait() == 143
        assert "released" in first.stderr()

        second.terminate(signal.SIGINT)
        assert second.wait() == 130
        info = status_json(lock, user.kubeconfig)
        assert info["holder"] is None  # released on the way out
        assert info["term"] == 1
        wait_until(
            "the watch to see the release", lambda: read_lines(watched)[-1].count("(free)") or None
        )
    finally:
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err
    lines = read_lines(watched)
    # the first state, then one line per change that is not a renewal
    assert lines[0] == f"lock:             {lock} (Lease)"
    changes = [line.split(": ", 1)[1].split()[0] for line in lines if f" {lock}: " in line]
    assert changes == ["holder=alpha", "holder=(free)", "holder=beta", "holder=(free)"], lines


def test_the_command_exit_status_is_the_runners_and_the_lock_is_released(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    lock = f"leases/{user.namespace}/once"
    runner = start(runners, tmp_path, "solo", lock, user, cmd=["sh", "-c", "exit 3"])
    assert runner.wait() == 3
    info = status_json(lock, user.kubeconfig)
    assert info["exists"] is True
    assert info["holder"] is None
    assert info["lease_duration_seconds"] == 1  # a release, as client-go writes it


def test_again_campaigns_after_each_term(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    lock = f"leases/{user.namespace}/again"
    markers = tmp_path / "markers"
    runner = start(
        runners, tmp_path, "looper", lock, user, "--again", cmd=marker_command(markers, "exit 0")
    )
    wait_until("three terms", lambda: len(read_lines(markers)) >= 3 or None)
    runner.terminate(signal.SIGTERM)
    assert runner.wait() == 143
    terms = [int(line.split()[1]) for line in read_lines(markers)]
    assert terms == sorted(set(terms)), terms  # each term a new fencing token
    assert all(line.startswith("looper ") for line in read_lines(markers))


def test_status_output(
    user: TestUser, runners: list[Runner], tmp_path: Path, control_plane: ControlPlane
) -> None:
    lock = f"leases/{user.namespace}/shown"
    missing = status_json(lock, user.kubeconfig)
    assert missing == {
        "lock": lock,
        "kind": "Lease",
        "exists": False,
        "holder": None,
        "readable": True,
        "term": None,
        "acquire_time": None,
        "acquire_age_seconds": None,
        "renew_time": None,
        "renew_age_seconds": None,
        "lease_duration_seconds": None,
        "resource_version": None,
    }
    markers = tmp_path / "markers"
    start(runners, tmp_path, "shown-leader", lock, user, cmd=marker_command(markers))
    wait_until("the command", lambda: read_lines(markers) or None)
    info = status_json(lock, user.kubeconfig)
    assert info["holder"] == "shown-leader"
    assert info["exists"] is True
    assert info["kind"] == "Lease"
    assert info["term"] == 0
    assert info["lease_duration_seconds"] == 4
    assert 0 <= info["renew_age_seconds"] < 4
    assert info["acquire_age_seconds"] >= info["renew_age_seconds"] - 0.01
    acquired = datetime.datetime.fromisoformat(info["acquire_time"])
    assert acquired.tzinfo is not None
    # the same object as kubectl sees it
    got = control_plane.kubectl("get", "lease", "shown", "-n", user.namespace, "-o", "json")
    spec = json.loads(got.stdout)["spec"]
    assert spec["holderIdentity"] == info["holder"]
    assert spec["leaseDurationSeconds"] == info["lease_duration_seconds"]
    assert spec.get("leaseTransitions", 0) == info["term"]
    assert int(info["resource_version"]) > 0

    text = subprocess.run(
        command("status", lock, "--kubeconfig", str(user.kubeconfig)),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=child_env(),
    ).stdout
    assert f"lock:             {lock} (Lease)" in text
    assert "holder:           shown-leader" in text
    assert "lease duration:   4 s" in text
