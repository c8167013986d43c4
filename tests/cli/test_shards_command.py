"""`trio-election run --shards` and `status --shards` on a real apiserver.

Each runner starts one child per shard it leads; the child appends ``start <shard>
<identity> <shards> <term> <lock>`` to a markers file, and ``stop <shard> <identity>``
when it gets SIGTERM. A shard's child is stopped before the shard is released, so in the
file's order a shard's ``start`` never comes while another child of it has not stopped:
`running()` replays the file and fails on the first overlap.
"""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from trio_election._cli._status_shards import describe_group, text

from ._runner import FAST_TIMING, Runner, child_env, command, get, read_lines, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trio_election.testing import ControlPlane, TestUser

S = 4
GROUP_VERBS = {"leases": ["get", "create", "update", "patch", "watch", "list", "delete"]}


@pytest.fixture
def user(control_plane: ControlPlane) -> TestUser:
    namespace = control_plane.create_namespace("shards-cli")
    return control_plane.user("runner", namespace=namespace, verbs=GROUP_VERBS)


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:
        runner.close()


def shard_child(markers: Path) -> list[str]:
    """A child that says when it starts and when SIGTERM stops it (the trap is set first,
    so every child that wrote ``start`` writes ``stop`` when it is stopped)."""
    start = (
        '"start $TRIO_ELECTION_SHARD $TRIO_ELECTION_IDENTITY $TRIO_ELECTION_SHARDS '
        '$TRIO_ELECTION_TERM $TRIO_ELECTION_LOCK"'
    )
    script = (
        f'trap \'kill $pid; echo "stop $TRIO_ELECTION_SHARD $TRIO_ELECTION_IDENTITY" '
        f">> {markers}; exit 0' TERM; echo {start} >> {markers}; sleep 600 & pid=$!; wait $pid"
    )
    return ["sh", "-c", script]


def start_runner(
    runners: list[Runner],
    folder: Path,
    name: str,
    group: str,
    user: TestUser,
    *options: str,
    cmd: list[str],
) -> Runner:
    args = [
        "run",
        group,
        "--shards",
        str(S),
        "--identity",
        name,
        "--kubeconfig",
        str(user.kubeconfig),
        *FAST_TIMING,
        "-v",  # the library's INFO lines too, for a failure's report
        *options,
        "--",
        *cmd,
    ]
    runner = Runner(folder, name, args)
    runners.append(runner)
    return runner


def running(markers: Path) -> dict[int, str]:
    """Whose child runs each shard now, replaying the file; fails on any overlap."""
    now: dict[int, str] = {}
    for line in read_lines(markers):
        kind, shard_text, who = line.split()[:3]
        shard = int(shard_text)
        if kind == "start":
            assert shard not in now, f"shard {shard} started by {who} while {now[shard]} runs"
            now[shard] = who
        elif now.get(shard) == who:
            del now[shard]
    return now


def split(markers: Path, names: set[str]) -> dict[int, str] | None:
    """The running map once every shard runs exactly once, spread evenly over `names`."""
    now = running(markers)
    counts = {name: sum(1 for who in now.values() if who == name) for name in names}
    even = all(S // len(names) <= c <= -(-S // len(names)) for c in counts.values())
    return now if len(now) == S and set(now.values()) == names and even else None


def status_shards(group: str, kubeconfig: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("status", group, "--shards", *flags, "--kubeconfig", str(kubeconfig)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=child_env(),
    )


def group_json(group: str, kubeconfig: Path) -> dict[str, Any]:
    done = status_shards(group, kubeconfig, "--json")
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def sample(text: str, series: str) -> float | None:
    """The value of the exact series ``name{labels}`` in a metrics text."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == series:
            return float(value)
    return None


def test_two_runners_split_the_shards_and_sigterm_hands_them_over(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    group = f"leases/{user.namespace}/work"
    markers = tmp_path / "markers"
    a = start_runner(
        runners, tmp_path, "a", group, user, "--http=127.0.0.1:0", cmd=shard_child(markers)
    )
    wait_until("a to run every shard", lambda: split(markers, {"a"}))
    b = start_runner(runners, tmp_path, "b", group, user, cmd=shard_child(markers))
    owners = wait_until("the shards split over a and b", lambda: split(markers, {"a", "b"}))
    # b's shards moved from a: each of a's children was stopped before b's started
    lines = read_lines(markers)
    b_shards = {shard for shard, who in owners.items() if who == "b"}
    assert {int(line.split()[1]) for line in lines if line.startswith("stop ")} == b_shards
    for line in lines:
        if line.startswith("start "):
            _, number, who, count, term, lock = line.split()
            assert count == str(S)
            assert lock == f"{group}-shard-{number}"
            assert term == ("1" if who == "b" else "0")  # b's terms are the second

    info = group_json(group, user.kubeconfig)
    assert info["group"] == group
    assert info["shard_count"] == S
    assert info["live_members"] == 2
    assert [s["holder"] for s in info["shards"]] == [owners[i] for i in range(S)]
    assert {s["state"] for s in info["shards"]} == {"fresh"}
    assert [(m["identity"], m["state"], m["shards"]) for m in info["members"]] == [
        ("a", "fresh", S),
        ("b", "fresh", S),
    ]
    for member in info["members"]:
        assert member["leads"] == sorted(
            i for i, who in owners.items() if who == member["identity"]
        )
    shown = status_shards(group, user.kubeconfig)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[:3] == [
        f"group:    {group}",
        f"shards:   {S}",
        "members:  2 live",
    ]

    base = a.http_base()
    metrics = get(f"{base}/metrics").text
    assert sample(metrics, 'trio_election_shards{name="work"}') == S
    assert sample(metrics, 'trio_election_shards_owned{name="work"}') == S - len(b_shards)
    assert sample(metrics, 'trio_election_shard_members{name="work"}') == 2
    moves = 'trio_election_shard_moves_total{name="work",direction="lost"}'
    assert sample(metrics, moves) == len(b_shards)
    for shard in range(S):
        mine = 1 if owners[shard] == "a" else 0
        assert (
            sample(metrics, f'trio_election_command_running{{name="work-shard-{shard}"}}') == mine
        )
        assert (
            sample(metrics, f'leader_election_master_status{{name="work-shard-{shard}"}}') == mine
        )
    view = get(f"{base}/").json()
    assert view["owned"] == sorted(i for i, who in owners.items() if who == "a")
    assert view["members"] == ["a", "b"]
    assert get(f"{base}/healthz").status_code == 200

    # SIGTERM: a leaves, stops its children, releases; b's children take over
    a.terminate(signal.SIGTERM)
    assert a.wait() == 143, a.stderr()
    a_shards = set(owners) - b_shards
    after = [line.split() for line in read_lines(markers)[len(lines) :]]
    stopped = {int(shard) for kind, shard, who, *_ in after if kind == "stop" and who == "a"}
    assert stopped == a_shards
    wait_until("b to run every shard", lambda: split(markers, {"b"}))
    assert "every shard released; exiting" in a.stderr()

    info = group_json(group, user.kubeconfig)
    # a's record deleted as it left
    assert [m["identity"] for m in info["members"]] == ["b"], (info, a.stderr())
    assert [s["holder"] for s in info["shards"]] == ["b"] * S, (info, b.stderr())

    b.terminate(signal.SIGINT)
    assert b.wait() == 130, b.stderr()
    assert running(markers) == {}
    info = group_json(group, user.kubeconfig)
    assert info["members"] == [], (info, b.stderr())
    # released on the way out
    assert [s["state"] for s in info["shards"]] == ["free"] * S, (info, b.stderr())


def test_a_command_that_exits_ends_the_runner_with_its_status(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    group = f"leases/{user.namespace}/exits"
    markers = tmp_path / "markers"
    # shard 1's command fails once every shard has started; the others run until stopped
    script = (
        f"trap 'kill $pid; echo \"stop $TRIO_ELECTION_SHARD\" >> {markers}; exit 0' TERM; "
        f'echo "start $TRIO_ELECTION_SHARD" >> {markers}; '
        f'if [ "$TRIO_ELECTION_SHARD" = 1 ]; then '
        f'while [ "$(grep -c start {markers})" -lt {S} ]; do sleep 0.05; done; exit 3; fi; '
        "sleep 600 & pid=$!; wait $pid"
    )
    runner = start_runner(runners, tmp_path, "solo", group, user, cmd=["sh", "-c", script])
    assert runner.wait() == 3, runner.stderr()
    assert "the command of shard 1 exited with status 3" in runner.stderr()
    lines = read_lines(markers)
    expected = [f"start {i}" for i in range(S)] + [f"stop {i}" for i in (0, 2, 3)]
    assert sorted(lines) == sorted(expected), (lines, runner.stderr())
    info = group_json(group, user.kubeconfig)
    assert info["members"] == [], (info, runner.stderr())
    assert [s["state"] for s in info["shards"]] == ["free"] * S, (info, runner.stderr())


def test_the_shard_map_names_expired_unreadable_and_disagreeing_records() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)

    def stamp(seconds_ago: float) -> str:
        moment = now - datetime.timedelta(seconds=seconds_ago)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def shard(i: int, holder: str, ago: float) -> dict[str, Any]:
        spec = {"holderIdentity": holder, "leaseDurationSeconds": 10, "renewTime": stamp(ago)}
        return {"metadata": {"name": f"work-shard-{i}"}, "spec": spec}

    def member(name: str, identity: str, shards: str, ago: float) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "labels": {"trio-election.io/shard-group": "work"},
                "annotations": {"trio-election.io/shards": shards},
            },
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": 10,
                "renewTime": stamp(ago),
            },
        }

    items = [
        shard(0, "a", 1),
        shard(1, "gone", 30),
        {"metadata": {"name": "work-shard-2"}, "spec": "not a Lease spec"},
        {"metadata": {"name": "other-shard-3"}, "spec": {"holderIdentity": "z"}},
        member("work-member-1", "a", "3", 2),
        member("work-member-2", "gone", "3", 40),
        member("work-member-3", "rolled", "5", 1),
        member("work-member-5", "b", "3", 3),
        {"metadata": {"name": "work-member-4", "labels": {"trio-election.io/shard-group": "work"}}},
    ]
    info = describe_group("team", "work", items, now)
    assert info["group"] == "leases/team/work"
    assert info["shard_count"] == 3  # most of the fresh members say so (a, b: 3; rolled: 5)
    assert [(s["shard"], s["holder"], s["state"]) for s in info["shards"]] == [
        (0, "a", "fresh"),
        (1, "gone", "expired"),
        (2, None, "unreadable"),
    ]
    assert [(m["identity"], m["state"], m.get("shards")) for m in info["members"]] == [
        ("a", "fresh", 3),
        ("b", "fresh", 3),
        ("gone", "expired", 3),
        ("rolled", "fresh", 5),
        (None, "unreadable", None),
    ]
    assert info["members"][0]["leads"] == [0]
    assert info["members"][2]["leads"] == []  # an expired holder leads nothing
    assert info["live_members"] == 3
    shown = text(info).splitlines()
    assert shown[:3] == ["group:    leases/team/work", "shards:   3", "members:  3 live"]
    assert shown[4:] == [
        "SHARD  HOLDER  STATE       TERM  RENEWED",
        "0      a       fresh       0     1.0 s ago",
        "1      gone    expired     0     30.0 s ago",
        "2      -       unreadable  -     -",
        "",
        "MEMBER           STATE       SHARDS  LEADS  RENEWED",
        "a                fresh       3       0      2.0 s ago",
        "b                fresh       3       -      3.0 s ago",
        "gone             expired     3       -      40.0 s ago",
        "rolled           fresh       5       -      1.0 s ago",
        "(work-member-4)  unreadable  -       -      -",
    ]


def test_again_starts_a_shards_command_again_and_keeps_the_shard(
    user: TestUser, runners: list[Runner], tmp_path: Path
) -> None:
    group = f"leases/{user.namespace}/again"
    markers = tmp_path / "markers"
    script = f'echo "start $TRIO_ELECTION_SHARD $TRIO_ELECTION_TERM" >> {markers}; exit 0'
    runner = start_runner(
        runners, tmp_path, "looper", group, user, "--again", cmd=["sh", "-c", script]
    )

    def restarted() -> bool | None:
        starts = [line.split()[1] for line in read_lines(markers)]
        return all(starts.count(str(i)) >= 3 for i in range(S)) or None

    wait_until("each shard's command to have run three times", restarted)
    info = group_json(group, user.kubeconfig)
    assert [s["holder"] for s in info["shards"]] == ["looper"] * S, (info, runner.stderr())
    # the same term throughout: the shard was kept, not released and taken again
    assert {line.split()[2] for line in read_lines(markers)} == {"0"}
    runner.terminate(signal.SIGTERM)
    assert runner.wait() == 143, runner.stderr()
    assert "exited with status 0; starting it again" in runner.stderr()
