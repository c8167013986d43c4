"""Kubernetes access and a Lease lock on the real kube-apiserver, under asyncio as under
trio: real TLS, a real token and RBAC, real watches, an exec plugin. Real time.

Each test runs once per event loop: trio, asyncio and asyncio on uvloop (anyio's pytest
plugin, `anyio_backend`, tests/harness/backends.py).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import stat
import sys
import textwrap
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import sniffio
import yaml
from harness.backends import BACKENDS, Backend

import trio_election as te
from trio_election._kube_locks import _detached, _streams
from trio_election.kube import KubeClient, KubeConfig, NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from trio_election.testing import ControlPlane, TestUser

pytestmark = [pytest.mark.control_plane, pytest.mark.anyio]

LEASE_RIGHTS = {"leases": ["get", "create", "update", "patch", "delete", "list", "watch"]}
T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("asyncio-kube")


@pytest.fixture(scope="module")
def holder(control_plane: ControlPlane, namespace: str) -> TestUser:
    return control_plane.user("holder", namespace=namespace, verbs=LEASE_RIGHTS)


def leases(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def unique(prefix: str) -> str:
    return f"{prefix}-{sniffio.current_async_library()}-{secrets.token_hex(3)}"


def lease_body(name: str, holder: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


async def until(condition: Any, within: float = 20.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await anyio.sleep(0.02)


async def test_requests_and_a_watch(anyio_backend: Backend, holder: TestUser) -> None:
    path = leases(holder.namespace)
    name = unique("watched")
    seen: list[tuple[str, str]] = []
    async with KubeClient(KubeConfig.load(holder.kubeconfig)) as client:
        created = await client.request("POST", path, json=lease_body(name))
        got = await client.request("GET", f"{path}/{name}")
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        with pytest.raises(NotFoundError):
            await client.request("GET", f"{path}/{name}-missing")
        params = {
            "watch": "1",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": created["metadata"]["resourceVersion"],
            "timeoutSeconds": "60",
        }
        opened = anyio.Event()

        async def watch() -> None:
            async with aclosing(client.watch(path, params=params)) as events:
                opened.set()
                async for event in events:
                    seen.append((event.type, event.object["spec"].get("holderIdentity", "")))
                    if event.type == "DELETED":
                        return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await opened.wait()  # from the version created: no write is missed
                changed = {**got, "spec": {**got["spec"], "holderIdentity": "b"}}
                await client.request("PUT", f"{path}/{name}", json=changed)
                await client.request("DELETE", f"{path}/{name}")
    assert seen == [("MODIFIED", "b"), ("DELETED", "b")]


async def test_an_exec_plugin(
    anyio_backend: Backend, tmp_path: Path, control_plane: ControlPlane, holder: TestUser
) -> None:
    plugin = tmp_path / "print-token"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": holder.token},
    }
    plugin.write_text(
        f"#!{sys.executable}\n" + textwrap.dedent(f"print({json.dumps(json.dumps(credential))})\n")
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_section = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": str(plugin),
        "interactiveMode": "Never",
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority": str(control_plane.ca_file),
                },
            }
        ],
        "users": [{"name": "test", "user": {"exec": exec_section}}],
        "contexts": [
            {
                "name": "test",
                "context": {"cluster": "test", "user": "test", "namespace": holder.namespace},
            }
        ],
    }
    (tmp_path / "kc").write_text(yaml.safe_dump(kubeconfig))
    name = unique("exec")
    async with KubeClient(KubeConfig.load(tmp_path / "kc")) as client:
        await client.request("POST", leases(holder.namespace), json=lease_body(name))
        got = await client.request("GET", f"{leases(holder.namespace)}/{name}")
    assert got["spec"]["holderIdentity"] == "a"


async def test_a_lease_lock_gets_creates_updates_and_watches(
    anyio_backend: Backend, holder: TestUser
) -> None:
    name = unique("lock")
    async with KubeClient(KubeConfig.load(holder.kubeconfig)) as client:
        lock = te.LeaseLock(holder.namespace, name, client)
        assert not (await lock.get()).exists
        created = await lock.create(te.LeaderRecord("a", 15, T0, T0, 0))
        renewed = te.LeaderRecord("a", 15, T0, T0 + dt.timedelta(seconds=2), 0)
        updated = await lock.update(renewed, created)
        assert (await lock.get()).record == renewed
        holders: list[str] = []

        async def watch() -> None:
            async with aclosing(lock.watch(updated)) as observations:
                async for state in observations:
                    assert state.record is not None
                    holders.append(state.record.holder_identity)
                    if state.record.holder_identity == "b":
                        return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                other = te.LeaseLock(holder.namespace, name, client)
                theirs = te.LeaderRecord("b", 15, T0, T0 + dt.timedelta(seconds=3), 1)
                await other.update(theirs, await other.get())
    assert holders == ["b"]


async def test_locks_of_one_client_share_one_watch(
    anyio_backend: Backend, holder: TestUser
) -> None:
    names = [unique(f"shared-{i}") for i in range(3)]
    last_seen: dict[str, str] = {}
    async with KubeClient(KubeConfig.load(holder.kubeconfig)) as client:
        locks = {name: te.LeaseLock(holder.namespace, name, client) for name in names}
        first = {
            name: await lock.create(te.LeaderRecord("a", 15, T0, T0, 0))
            for name, lock in locks.items()
        }

        async def watch(name: str) -> None:
            async with aclosing(locks[name].watch(first[name])) as observations:
                async for state in observations:
                    assert state.record is not None
                    last_seen[name] = state.record.holder_identity
                    if state.record.holder_identity == "x":
                        return

        def shared() -> bool:
            collection = _streams._collections(client).get(leases(holder.namespace))
            return collection is not None and collection.live() is not None

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(watch, name)
                await until(shared)
                for lock in locks.values():
                    await lock.update(te.LeaderRecord("x", 15, T0, T0, 1), await lock.get())
    assert last_seen == dict.fromkeys(names, "x")
    assert not _detached._running  # the shared watch ended with its last reader
