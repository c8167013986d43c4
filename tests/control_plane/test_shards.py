"""A shard group of member processes on the real apiserver: 16 shards over 3 members.

Each member is `_shard_member.py` in a process of its own, with its own service account;
it prints when each shard's work starts and when it has unwound, on the machine's
monotonic clock, so that one `History` per shard judges every process on one clock.

- three members split the 16 shards 5/5/6, and the shard Leases name the owners in
  client-go's record;
- they write about (S + N) / retry_period Leases per second (the rate is printed);
- SIGTERM: the member leaves the group first and releases its shards; the others lead
  them within a second;
- SIGKILL: its shards are led by the others within lease_duration + retry_period of the
  kill (its membership Lease and its shard Leases run out);
- a fourth member joins and takes its part;
- an apiserver restart moves no shard and stops no work;
- a member cut off from the apiserver (its connection through Toxiproxy, a black hole)
  stops the work of its shards before anyone else starts it, and takes its part back
  when healed;
- never two members at once on any shard.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from harness.event_lines import EventProcess
from harness.toxiproxy import ToxicProxy, Toxiproxy

import trio_election as te
from trio_election._controlplane._binaries import find_toxiproxy
from trio_election._controlplane._kubeconfig import write_kubeconfig
from trio_election._shards._kube import GROUP_LABEL
from trio_election.kube import ForbiddenError, KubeClient, KubeConfig
from trio_election.testing import History, Interval

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane

MEMBER = Path(__file__).with_name("_shard_member.py")
S = 16
LEASE, RENEW, RETRY = 10.0, 7.0, 2.0
VERBS = ("get", "create", "update", "patch", "delete", "list", "watch")


def lease_writes(control_plane: ControlPlane) -> int:
    """Writes of Leases the apiserver has answered so far (its own included)."""
    total = 0.0
    pattern = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
    for line in control_plane.metrics().splitlines():
        match = pattern.match(line)
        if (
            match
            and 'resource="leases"' in match["labels"]
            and re.search(r'verb="(PUT|PATCH|POST|DELETE)"', match["labels"])
        ):
            total += float(match["value"])
    return round(total)


def owned_now(process: EventProcess) -> set[int]:
    owned: set[int] = set()
    for event in process.events:
        if event.kind == "started-leading":
            owned.add(int(event.arg))
        elif event.kind == "stopped-leading":
            owned.discard(int(event.arg))
        elif event.kind == "process-exit":
            owned.clear()
    return owned


def terms(name: str, process: EventProcess, killed_at: float | None) -> dict[int, list[Interval]]:
    """Each shard's terms in `process`; a term still open ends at its kill, or now."""
    found: dict[int, list[Interval]] = {}
    open_: dict[int, float] = {}
    for event in process.events:
        if event.kind == "started-leading":
            open_[int(event.arg)] = event.time
        elif event.kind == "stopped-leading":
            shard = int(event.arg)
            found.setdefault(shard, []).append(Interval(name, open_.pop(shard), event.time))
    end = time.monotonic() if killed_at is None else killed_at
    for shard, start in open_.items():
        found.setdefault(shard, []).append(Interval(name, start, end))
    return found


class Members:
    def __init__(self, control_plane: ControlPlane, tmp_path: Path) -> None:
        self.namespace = control_plane.create_namespace("shards")
        self.group = f"leases/{self.namespace}/work"
        self.control_plane = control_plane
        self.tmp_path = tmp_path
        self.processes: dict[str, EventProcess] = {}
        self.killed_at: dict[str, float] = {}
        self.proxies: list[ToxicProxy] = []

    def start(self, name: str, *timings: float, toxiproxy: Toxiproxy | None = None) -> EventProcess:
        """Start member `name`; with `toxiproxy`, it reaches the apiserver through a proxy
        of its own there (`self.proxies[-1]`)."""
        user = self.control_plane.user(name, namespace=self.namespace, verbs={"leases": VERBS})
        kubeconfig = user.kubeconfig
        if toxiproxy is not None:
            server = httpx.URL(self.control_plane.server)
            proxy = toxiproxy.create_proxy(
                f"{self.namespace}.{name}", upstream=f"{server.host}:{server.port}"
            )
            self.proxies.append(proxy)
            kubeconfig = write_kubeconfig(
                self.tmp_path / f"{name}.kubeconfig",
                server=f"https://{proxy.listen}",
                ca_pem=self.control_plane.ca_pem,
                user=name,
                token=user.token,
                namespace=self.namespace,
            )
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        }
        process = EventProcess(
            [sys.executable, str(MEMBER), self.group, name, str(S), *map(str, timings)],
            log=self.tmp_path / f"{name}.log",
            env={**env, "KUBECONFIG": str(kubeconfig)},
            name=name,
        )
        self.processes[name] = process
        return process

    def owners(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for name, process in self.processes.items():
            for shard in owned_now(process):
                assert shard not in found, (shard, name, found[shard])
                found[shard] = name
        return found

    def wait(self, names: set[str], *, within: float) -> float:
        """Until every shard is led and split evenly over `names`; returns when."""
        deadline = time.monotonic() + within
        while True:
            owners = self.owners()
            counts = Counter(owners.values())
            n = len(names)
            if (
                len(owners) == S
                and set(counts) == names
                and all(S // n <= c <= -(-S // n) for c in counts.values())
            ):
                return time.monotonic()
            assert time.monotonic() < deadline, (owners, counts, self.log_tails())
            time.sleep(0.02)  # the events come from reader threads

    def log_tails(self) -> str:
        return "\n".join(
            f"{name}: {(self.tmp_path / f'{name}.log').read_text()[-1500:]}"
            for name in self.processes
        )

    def histories(self) -> dict[int, History]:
        by_shard: dict[int, History] = {i: History() for i in range(S)}
        for name, process in self.processes.items():
            for shard, intervals in terms(name, process, self.killed_at.get(name)).items():
                by_shard[shard].intervals.extend(intervals)
        return by_shard

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for proxy in self.proxies:
            proxy.delete()


@pytest.fixture
def members(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Members]:
    group = Members(control_plane, tmp_path)
    yield group
    group.stop()


def test_sixteen_shards_over_member_processes(members: Members) -> None:
    for name in ("a", "b", "c"):
        members.start(name)
    members.wait({"a", "b", "c"}, within=60)
    # client-go's record: kubectl and client-go read the owner of each shard (read until
    # the Leases and the members agree: a move may still be under way once balanced)
    deadline = time.monotonic() + 30
    while True:
        with members.control_plane.http_client() as admin:
            path = f"/apis/coordination.k8s.io/v1/namespaces/{members.namespace}/leases"
            response = admin.get(path)
            assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        holders = {item["metadata"]["name"]: item["spec"].get("holderIdentity") for item in items}
        owners = members.owners()
        shown = {shard: holders.get(f"work-shard-{shard}") for shard in range(S)}
        if shown == owners:
            break
        assert time.monotonic() < deadline, (shown, owners)
        time.sleep(0.05)
    labelled = [
        i
        for i in items
        if dict[str, str](i["metadata"].get("labels") or {}).get(GROUP_LABEL) == "work"
    ]
    assert sorted(i["spec"]["holderIdentity"] for i in labelled) == ["a", "b", "c"]

    # cost: about (S + N) / retry_period writes per second, whatever else happens
    before, started = lease_writes(members.control_plane), time.monotonic()
    time.sleep(10 * RETRY)  # the measurement window: the rate is the behaviour here
    rate = (lease_writes(members.control_plane) - before) / (time.monotonic() - started)
    print(f"writes: {rate:.1f} per second for S={S}, N=3 (expected {(S + 3) / RETRY:.1f})")
    assert rate <= 1.5 * (S + 3) / RETRY + 1  # + 1: the apiserver's own Leases

    # SIGTERM: the member leaves first, releases; the others lead its shards at once
    sent = members.processes["b"].send(signal.SIGTERM)
    assert members.processes["b"].find("process-exit", "143", within=20) is not None
    taken = members.wait({"a", "c"}, within=10)
    print(f"SIGTERM: shards led by the others {taken - sent:.3f} s after the signal")
    assert taken - sent < 2.0

    # SIGKILL: taken when its records run out
    members.killed_at["c"] = members.processes["c"].send(signal.SIGKILL)
    taken = members.wait({"a"}, within=LEASE + RETRY + 10)
    print(f"SIGKILL: shards led by the other {taken - members.killed_at['c']:.3f} s after")
    assert taken - members.killed_at["c"] <= LEASE + RETRY + 2.0  # one renewal's margin

    # a member joins and takes its part
    joined = time.monotonic()
    members.start("d")
    taken = members.wait({"a", "d"}, within=30)
    print(f"join: balanced {taken - joined:.3f} s after the process started")

    for shard, history in members.histories().items():
        try:
            history.assert_one_leader()
        except AssertionError as exc:
            raise AssertionError(f"shard {shard}: {exc}") from None


def test_without_list_and_watch_the_group_names_the_verb_to_grant(
    control_plane: ControlPlane,
) -> None:
    namespace = control_plane.create_namespace("shards-rbac")
    verbs = ("get", "create", "update", "patch", "delete")
    user = control_plane.user("narrow", namespace=namespace, verbs={"leases": verbs})

    async def main() -> None:
        async with KubeClient(KubeConfig.load(user.kubeconfig)) as client:
            with pytest.raises(ForbiddenError) as caught:
                async with te.open_shards(
                    f"leases/{namespace}/work", shards=4, client=client, stop_on_sigterm=False
                ):
                    pass
        message = str(caught.value)
        assert 'Grant the "list" verb on "leases"' in message, message

    trio.run(main)


RESTART_TIMINGS = (40.0, 30.0, 2.0)
"""A restart here is an outage of 5 s and more (the old apiserver's SIGTERM grace, then the
new one's start on a loaded machine): beyond a renew deadline of 7 s, within 30 s."""


def test_an_apiserver_restart_costs_the_members_nothing(members: Members) -> None:
    for name in ("a", "b"):
        members.start(name, *RESTART_TIMINGS)
    members.wait({"a", "b"}, within=60)
    owners = members.owners()
    restarted = time.monotonic()
    members.control_plane.restart_apiserver(down_for=0.2)
    back = dt.datetime.now(dt.UTC)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{members.namespace}/leases"
    deadline = time.monotonic() + 30
    while True:  # until every shard Lease has been renewed since the apiserver came back
        with members.control_plane.http_client() as admin:
            response = admin.get(path)
        if response.status_code == 200:
            items: list[dict[str, Any]] = response.json()["items"]
            renewed = [
                dt.datetime.fromisoformat(i["spec"]["renewTime"]) > back
                for i in items
                if "-shard-" in i["metadata"]["name"]
            ]
            if len(renewed) == S and all(renewed):
                break
        assert time.monotonic() < deadline, (response.text, members.log_tails())
        time.sleep(0.1)
    assert members.owners() == owners
    for name, process in members.processes.items():
        stopped = [e for e in process.events if e.kind == "stopped-leading" and e.time >= restarted]
        assert stopped == [], (name, stopped, members.log_tails())


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[Toxiproxy]:
    if find_toxiproxy() is None:
        message = "Toxiproxy's server is missing: run `python scripts/build_control_plane.py`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    with Toxiproxy.start() as server:
        yield server


def test_a_partitioned_member_stops_its_work_before_anyone_else_starts_it(
    members: Members, toxiproxy: Toxiproxy
) -> None:
    a = members.start("a", toxiproxy=toxiproxy)
    for name in ("b", "c"):
        members.start(name)
    members.wait({"a", "b", "c"}, within=60)
    [proxy] = members.proxies
    theirs = owned_now(a)

    # a black hole: nothing passes either way, the connections stay open
    cut = time.monotonic()
    for stream in ("upstream", "downstream"):
        proxy.add_toxic("timeout", stream=stream, name=f"cut-{stream}", timeout=0)
    taken = members.wait({"b", "c"}, within=LEASE + RETRY + 20)
    print(f"partition: a's shards led by the others {taken - cut:.3f} s after the cut")
    stops = {int(e.arg): e.time for e in a.events if e.kind == "stopped-leading" and e.time > cut}
    assert set(stops) == theirs, (stops, theirs)  # its work stopped, every shard of it
    histories = members.histories()
    gaps: list[float] = []
    for shard in theirs:
        after = histories[shard].next_start_after(cut)
        assert after is not None, shard
        # nobody started it before a's work had stopped
        assert after > stops[shard], (shard, stops[shard], after, members.log_tails())
        gaps.append(after - stops[shard])
    print(
        f"partition: a stopped its work {max(stops.values()) - cut:.3f} s after the cut "
        f"(renew deadline {RENEW:g} s); the next starts came {min(gaps):.3f} s to "
        f"{max(gaps):.3f} s after its stops"
    )

    # healed: it reaches the group again and takes its part back
    healed = time.monotonic()
    proxy.heal()
    back = members.wait({"a", "b", "c"}, within=LEASE + RETRY + 30)
    print(f"partition: balanced again {back - healed:.3f} s after the heal")
    assert owned_now(a)

    for shard, history in members.histories().items():
        try:
            history.assert_one_leader()
        except AssertionError as exc:
            raise AssertionError(f"shard {shard}: {exc}") from None
