"""Kubernetes access and the Kubernetes locks under asyncio as under trio.

Each test runs once per event loop, trio, asyncio and asyncio on uvloop (anyio's pytest
plugin, `anyio_backend`, tests/harness/backends.py), in real time: requests and watches on
the in-memory API (`FakeKubeApi`, behind an `httpx.MockTransport`), cancel scopes around
them, the shared watch of a collection, exec plugins (a real process) and token files.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from harness.backends import BACKENDS, Backend, loop_of, running_loop

import trio_election as te
from trio_election._kube_locks import _detached
from trio_election.kube import GoneError, KubeClient, KubeConfig, NotFoundError
from trio_election.testing._fake_api import FakeKubeApi

from .conftest import kubeconfig, write_plugin, write_script

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election._kube._watch import WatchEvent

pytestmark = pytest.mark.anyio

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
V1 = "client.authentication.k8s.io/v1"
T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


def lease(name: str, holder: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


async def until(condition: Any, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await anyio.sleep(0.005)


async def test_runs_on_its_backend(anyio_backend: Backend) -> None:
    assert running_loop() == loop_of(anyio_backend)


async def test_requests_and_typed_errors(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    async with api.client() as client:
        created = await client.request("POST", LEASES, json=lease("a"))
        got = await client.request("GET", f"{LEASES}/a")
        assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        with pytest.raises(NotFoundError):
            await client.request("GET", f"{LEASES}/missing")
        listing = await client.request("GET", LEASES)
    assert [item["metadata"]["name"] for item in listing["items"]] == ["a"]


async def test_a_cancel_scope_stops_a_request_that_hangs(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    api.hang_next(verb="get")
    async with api.client() as client:
        with anyio.move_on_after(0.1) as scope:
            await client.request("GET", f"{LEASES}/a")
        assert scope.cancelled_caught
        api.heal()
        await client.request("POST", LEASES, json=lease("a"))  # the client still works


async def test_a_watch_sees_writes_as_they_land(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    seen: list[tuple[str, str]] = []
    async with api.client() as client:
        created = await client.request("POST", LEASES, json=lease("a"))
        params = {"watch": "1", "resourceVersion": created["metadata"]["resourceVersion"]}

        async def watch() -> None:
            async with aclosing(client.watch(LEASES, params=params)) as events:
                async for event in events:
                    seen.append((event.type, event.name))
                    if event.type == "DELETED":
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await until(lambda: api.open_watches == 1)
            await client.request("PUT", f"{LEASES}/a", json={**created, "spec": {}})
            await client.request("POST", LEASES, json=lease("b"))
            await client.request("DELETE", f"{LEASES}/a")
    assert seen == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert api.open_watches == 0


async def test_an_expired_watch_raises_gone(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    events: list[WatchEvent] = []
    async with api.client() as client:
        await client.request("POST", LEASES, json=lease("a"))

        async def watch() -> None:
            with pytest.raises(GoneError):
                async with aclosing(client.watch(LEASES, params={"watch": "1"})) as stream:
                    async for event in stream:
                        events.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await until(lambda: api.open_watches == 1)
            api.expire_watches()
    assert [(e.type, e.name) for e in events] == [("ADDED", "a")]  # the state it started from


async def test_a_lease_lock_gets_creates_updates_and_watches(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    async with api.client() as client:
        lock = te.LeaseLock("default", "my-app", client)
        assert not (await lock.get()).exists
        mine = te.LeaderRecord("a", 15, T0, T0, 0)
        created = await lock.create(mine)
        assert created.record == mine
        renewed = te.LeaderRecord("a", 15, T0, T0 + dt.timedelta(seconds=2), 0)
        updated = await lock.update(renewed, created)
        assert updated.record == renewed
        assert (await lock.get()).record == renewed

        states: list[te.Observation] = []

        async def watch() -> None:
            async with aclosing(lock.watch(updated)) as observations:
                async for state in observations:
                    states.append(state)
                    if not state.exists:
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await until(lambda: api.open_watches == 1)
            theirs = te.LeaderRecord("b", 15, T0, T0 + dt.timedelta(seconds=3), 1)
            other = te.LeaseLock("default", "my-app", client)
            await other.update(theirs, await other.get())
            api.delete_object("leases", "my-app")
    assert [s.record.holder_identity if s.record else None for s in states] == ["b", None]


async def test_locks_of_one_client_share_one_watch(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    names = ["a", "b", "c"]
    last_seen: dict[str, str] = {}
    async with api.client() as client:
        locks = {name: te.LeaseLock("default", name, client) for name in names}
        first = {
            name: await lock.create(te.LeaderRecord(name, 15, T0, T0, 0))
            for name, lock in locks.items()
        }

        async def watch(name: str) -> None:
            async with aclosing(locks[name].watch(first[name])) as observations:
                async for state in observations:
                    assert state.record is not None
                    last_seen[name] = state.record.holder_identity
                    if state.record.holder_identity == "x":
                        return

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(watch, name)

            # the first watches its own object; those after it share a watch of all Leases,
            # and the first moves to it too: its own watch closes
            def one_shared_watch() -> bool:
                shared = [w for w in api.filter("watch") if "fieldSelector" not in w.params]
                return len(shared) == 1 and api.open_watches == 1

            await until(one_shared_watch)
            for lock in locks.values():
                await lock.update(te.LeaderRecord("x", 15, T0, T0, 1), await lock.get())
    assert last_seen == dict.fromkeys(names, "x")
    shared = [w for w in api.filter("watch") if "fieldSelector" not in w.params]
    assert len(shared) == 1
    assert len(api.filter("watch")) == 2  # the first one's own, and the shared one
    assert api.open_watches == 0
    assert not _detached._running  # the shared watch ended with its last reader


async def test_an_exec_plugin_gives_the_token(anyio_backend: Backend, tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin", {"token": "exec-token"}, api_version=V1)
    section = {"apiVersion": V1, "command": str(plugin.path), "interactiveMode": "Never"}
    config = KubeConfig.load(kubeconfig(tmp_path / "kc", user={"exec": section}))
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"kind": "Lease"})

    async with KubeClient(config, transport=httpx.MockTransport(handle)) as client:
        assert await client.request("GET", f"{LEASES}/x") == {"kind": "Lease"}
        await client.request("GET", f"{LEASES}/x")
    assert seen == ["Bearer exec-token"] * 2
    assert len(plugin.runs()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_cancelled_exec_plugin_is_asked_to_stop(
    anyio_backend: Backend, tmp_path: Path
) -> None:
    stopped = tmp_path / "stopped"
    started = tmp_path / "started"
    script = write_script(
        tmp_path / "bin" / "slow",
        f"""
        import pathlib, signal, sys, time
        def stop(signum, frame):
            pathlib.Path({str(stopped)!r}).write_text(str(signum))
            sys.exit(1)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(started)!r}).write_text("")
        time.sleep(60)
        """,
    )
    section = {"apiVersion": V1, "command": str(script), "interactiveMode": "Never"}
    config = KubeConfig.load(kubeconfig(tmp_path / "kc", user={"exec": section}))
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={}))
    async with KubeClient(config, transport=transport) as client:
        with anyio.move_on_after(10) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.request, "GET", f"{LEASES}/x")
                await until(started.exists, within=10)
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
    assert stopped.read_text() == str(int(signal.SIGTERM))


async def test_a_token_file_is_read_again_after_a_401(
    anyio_backend: Backend, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    valid = {"Bearer old"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") in valid:
            return httpx.Response(200, json={"kind": "Lease"})
        return httpx.Response(401, json={"kind": "Status", "code": 401})

    config = KubeConfig(server="https://kube.invalid", token_file=token)
    async with KubeClient(config, transport=httpx.MockTransport(handle)) as client:
        await client.request("GET", f"{LEASES}/x")
        token.write_text("new\n")  # rotated: the old one is refused from now on
        valid = {"Bearer new"}
        assert await client.request("GET", f"{LEASES}/x") == {"kind": "Lease"}


async def test_a_stalled_write_lands_after_its_sender_gave_up(anyio_backend: Backend) -> None:
    api = FakeKubeApi()
    api.stall_next(apply_after=0.2, verb="create")
    async with api.client() as client:
        with anyio.move_on_after(0.05) as scope:
            await client.request("POST", LEASES, json=lease("a"))
        assert scope.cancelled_caught
        assert api.get_object("leases", "a") is None
        await until(lambda: api.get_object("leases", "a") is not None)
