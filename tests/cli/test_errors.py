"""Bad input to `trio-election`: one line that says what to fix, status 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from trio_election._cli import main
from trio_election._cli._http import parse_address
from trio_election._cli._options import parse_duration

from ._runner import Runner, child_env, command, get, wait_until

if TYPE_CHECKING:
    from pathlib import Path

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: x
  context: {cluster: c, user: u, namespace: team}
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig that loads (nothing listens behind it), given as $TRIO_ELECTION_KUBECONFIG."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("TRIO_ELECTION_KUBECONFIG", str(path))  # as --kubeconfig
    return path


def error_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status = main(list(argv))
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trio-election: error: "), err
    return lines[0].removeprefix("trio-election: error: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--", "true"], "no lock given: name it as LOCK"),
        (["status"], "no lock given"),
        (["run", "leases/a/b/c", "--", "true"], "invalid lock 'leases/a/b/c'"),
        (["run", "pods/team/x", "--", "true"], "unknown resource 'pods'"),
        (["run", "leases/Team/x", "--", "true"], "invalid namespace 'Team'"),
        (
            ["run", "leases/x", "--leader-elect-lease-duration", "5x", "--", "true"],
            "argument --leader-elect-lease-duration: invalid duration '5x': give a Go duration",
        ),
        (
            ["run", "leases/x", "--leader-elect-lease-duration", "5s", "--", "true"],
            "lease_duration must be greater than renew_deadline (got lease_duration=5.0, "
            "renew_deadline=10.0); set them with --leader-elect-lease-duration",
        ),
        (
            ["run", "leases/x", "--leader-elect-retry-period", "9s", "--", "true"],
            "renew_deadline must be greater than retry_period * 1.2",
        ),
        (
            ["run", "leases/x", "--", "no-such-command-here"],
            "command 'no-such-command-here' not found on PATH",
        ),
        (
            ["run", "leases/x", "--http", "localhost", "--", "true"],
            "argument --http: invalid address",
        ),
        (
            ["run", "leases/x", "--leader-elect-resource-name", "y", "--", "true"],
            "the lock is given twice",
        ),
        (["status", "leases/x", "--output", "yaml"], "invalid choice: 'yaml'"),
        (["status", "leases/x", "--", "ls"], "status takes no command after --"),
        (["run", "leases/x", "--"], "nothing after --: give the command to run"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "leases/x", "--identity", "", "--", "true"], "identity is empty"),
        (
            ["run", "leases/x", "--shards", "0", "--", "true"],
            "argument --shards: invalid shard count '0': give a whole number of shards, at least 1",
        ),
        (["run", "leases/x", "--shards", "-3", "--", "true"], "argument --shards: invalid"),
        (["run", "leases/x", "--shards", "four", "--", "true"], "invalid shard count 'four'"),
        (
            ["run", "configmaps/team/x", "--shards", "4", "--", "true"],
            "argument --shards: a shard group is made of Leases, and 'configmaps/team/x' names "
            "configmaps: give LOCK as leases/<namespace>/<name>",
        ),
        (
            [
                "run",
                "--leader-elect-resource-lock=endpoints",
                "--leader-elect-resource-name=x",
                "--shards=2",
                "--",
                "true",
            ],
            "a shard group is made of Leases, and 'endpoints/x' names endpoints",
        ),
        (
            ["run", "leases/x", "--shards", "2", "--", "no-such-command-here"],
            "command 'no-such-command-here' not found on PATH",
        ),
        (
            ["run", f"leases/{'g' * 64}", "--shards", "2", "--", "true"],
            "its name is the value of the label trio-election.io/shard-group",
        ),
        (["status", "endpoints/x", "--shards"], "a shard group is made of Leases"),
        (["status", "leases/x", "--shards", "--watch"], "--watch does not follow a shard group"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    message = error_of(capsys, *argv)
    assert expected in message


def test_missing_kubeconfig(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = kubeconfig.parent / "gone"
    message = error_of(capsys, "run", "leases/x", "--kubeconfig", str(gone), "--", "true")
    assert message == f"kubeconfig {gone} does not exist: check the path given"
    monkeypatch.delenv("TRIO_ELECTION_KUBECONFIG")
    message = error_of(capsys, "status", "leases/x")
    assert message.startswith("no Kubernetes configuration found")
    assert "pass --kubeconfig PATH or set KUBECONFIG" in message


def test_lock_from_the_client_go_flags(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # parsed into the same lock string: the bad namespace is reported as part of it
    message = error_of(
        capsys,
        "status",
        "--kubeconfig",
        str(kubeconfig),
        "--leader-elect-resource-lock=configmaps",
        "--leader-elect-resource-namespace=Bad",
        "--leader-elect-resource-name=app",
    )
    assert message.startswith("invalid lock 'configmaps/Bad/app': invalid namespace 'Bad'")


def test_as_a_process_no_traceback(kubeconfig: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_election",
            "run",
            "leases/a/b/c",
            "--kubeconfig",
            str(kubeconfig),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("trio-election: error: invalid lock 'leases/a/b/c'")
    assert done.stderr.count("\n") == 1
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        ([], ["run", "status", "demo", "control-plane"]),
        (
            ["run"],
            [
                "--leader-elect-lease-duration",
                "--leader-elect-renew-deadline",
                "--leader-elect-retry-period",
                "--leader-elect-resource-lock",
                "--leader-elect-resource-name",
                "--leader-elect-resource-namespace",
                "--kubeconfig",
                "--context",
                "--identity",
                "--grace",
                "--again",
                "--http",
                "TRIO_ELECTION_LEASE_DURATION",
                "143",
            ],
        ),
        (["status"], ["--watch", "--output"]),
        (["control-plane"], ["build", "path", "start"]),
        (["demo"], ["--memory"]),
    ],
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str], mentions: list[str]) -> None:
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    for word in mentions:
        assert word in out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("15", 15.0),
        ("2.5", 2.5),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "-1s", "1s2", "1 s", "ms"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:4040", ("127.0.0.1", 4040)),
        (":4040", (None, 4040)),
        ("4040", (None, 4040)),
        ("[::1]:0", ("::1", 0)),
    ],
)
def test_http_addresses(text: str, address: tuple[str | None, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["localhost", "127.0.0.1:", "127.0.0.1:70000", "[::1"])
def test_bad_http_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid address"):
        parse_address(text)


# ------------------------------------------------------------------ misuse, in order of need
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("256.1.1.1:80", "cannot listen on '256.1.1.1:80': the host '256.1.1.1' is not an address"),
        (
            "no.such.host.invalid:8080",
            "cannot listen on 'no.such.host.invalid:8080': the host 'no.such.host.invalid' is "
            "not an address",
        ),
    ],
)
def test_an_http_address_that_cannot_be_bound_is_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], address: str, expected: str
) -> None:
    message = error_of(capsys, "run", "leases/x", "--http", address, "--", "true")
    assert message.startswith(f"argument --http: {expected}")
    assert "e.g. 127.0.0.1:4040, or :4040 for every interface" in message


def test_a_port_in_use_fails_at_once_while_the_apiserver_cannot_be_reached(
    kubeconfig: Path,
) -> None:
    """The kubeconfig's server (127.0.0.1:1) refuses connections: the election would retry
    forever; the --http address is bound first, so the conflict ends the command."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            command("run", "leases/x", "--kubeconfig", str(kubeconfig), "--http",
                    f"127.0.0.1:{port}", "--", "true"),
            capture_output=True, text=True, timeout=60, check=False, env=child_env(),
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"trio-election: error: argument --http: cannot listen on '127.0.0.1:{port}': the "
        "address is already in use (another process listens there); pick a free port, or "
        "port 0 for any\n"
    )


def test_healthz_answers_while_the_apiserver_cannot_be_reached(
    kubeconfig: Path, tmp_path: Path
) -> None:
    runner = Runner(
        tmp_path, "outage", ["run", "leases/x", "--kubeconfig", str(kubeconfig), "--http",
                             "127.0.0.1:0"],
    )  # fmt: skip
    try:
        base = runner.http_base()
        wait_until("a failed read", lambda: "cannot read the lock yet" in runner.stderr() or None)
        assert get(f"{base}/healthz").status_code == 200
        assert get(f"{base}/").json() == {"name": ""}
        metrics = get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert 'trio_election_command_running{name="x"} 0' in metrics.text
    finally:
        runner.close()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--lease-duration", "1"],
            "lease_duration must be greater than renew_deadline (got lease_duration=1.0, "
            "renew_deadline=3.0); set them with --lease-duration, --renew-deadline and "
            "--retry-period",
        ),
        (["--candidates", "0"], "argument --candidates: give at least 2, got '0'"),
        (["--candidates", "1"], "argument --candidates: give at least 2, got '1'"),
    ],
)
def test_bad_demo_options_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    message = error_of(capsys, "demo", "--memory", *argv)
    assert message.startswith(expected)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "pods/a/b"], "invalid lock 'pods/a/b': unknown resource 'pods'"),
        (["run", "leases/a/b/c", "--", "./worker"], "invalid lock 'leases/a/b/c': expected two"),
        (["status", "leases/Default/My_App"], "invalid lock 'leases/Default/My_App': invalid "
         "namespace 'Default'"),
    ],
)  # fmt: skip
def test_a_bad_lock_is_named_before_the_missing_kubeconfig(
    kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.delenv("TRIO_ELECTION_KUBECONFIG")  # no configuration anywhere now
    monkeypatch.chdir(kubeconfig.parent)  # where no ./worker exists
    message = error_of(capsys, *argv)
    assert message.startswith(expected)
    assert "where <resource> is one of leases, endpoints, configmaps" in message
