"""The Kubernetes locks against a real kube-apiserver: every lock type, every RBAC profile.

Real time, real TLS, real tokens and RBAC. Each client goes through a recording transport so
that the tests can tell which requests were made (PATCH or PUT, how many per renew).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import yaml

import trio_election as te
from trio_election._kube import KubeClient, KubeConfig
from trio_election._kube._errors import ForbiddenError
from trio_election._kube_locks import (
    LEADER_ANNOTATION,
    ConfigMapLock,
    EndpointsLock,
    KubeLock,
    LeaseLock,
    MultiLock,
    _forbidden,
    lock_from_string,
)

from ._transport import Recorder

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping, Sequence
    from pathlib import Path

    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

LOCK_TYPES: dict[str, type[KubeLock]] = {
    "leases": LeaseLock,
    "endpoints": EndpointsLock,
    "configmaps": ConfigMapLock,
}
CORE = "/api/v1/namespaces/{namespace}/{resource}"
GROUPS = {"leases": "/apis/coordination.k8s.io/v1/namespaces/{namespace}/{resource}"}
T0 = dt.datetime(2024, 5, 1, 10, 5, 2, 654321, tzinfo=dt.UTC)
WHOLE = T0.replace(microsecond=0)

PROFILES: dict[str, Sequence[str]] = {
    "get-create-update": ("get", "create", "update"),
    "with-patch": ("get", "create", "update", "patch"),
    "with-watch": ("get", "create", "update", "watch", "list"),
    "everything": ("get", "create", "update", "patch", "watch", "list"),
}


def collection(namespace: str, resource: str) -> str:
    return GROUPS.get(resource, CORE).format(namespace=namespace, resource=resource)


def open_client(
    control_plane: ControlPlane, user: TestUser | None, recorder: Recorder
) -> KubeClient:
    """A client for `user` (None: the admin) through `recorder`."""
    token = control_plane.admin_token if user is None else user.token
    namespace = "default" if user is None else user.namespace
    config = KubeConfig(server=control_plane.server, namespace=namespace, token=token)
    return KubeClient(config, transport=recorder)


class Seen:
    """Observations yielded by a watch, and a way to wait for the next ones."""

    def __init__(self) -> None:
        self.items: list[te.Observation] = []
        self._more = trio.Event()

    async def follow(self, lock: KubeLock, after: te.Observation) -> None:
        async with aclosing(lock.watch(after)) as events:
            async for event in events:
                self.items.append(event)
                self._more.set()
                self._more = trio.Event()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(5):
            while len(self.items) < count:
                await self._more.wait()


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("locks")


@pytest.fixture(scope="module")
def users(control_plane: ControlPlane, namespace: str) -> dict[str, TestUser]:
    made = {
        name: control_plane.user(name, namespace=namespace, verbs=dict.fromkeys(LOCK_TYPES, verbs))
        for name, verbs in PROFILES.items()
    }
    made["nothing"] = control_plane.user("nothing", namespace=namespace, verbs={})
    return made


@pytest.fixture
def recorder(control_plane: ControlPlane) -> Recorder:
    return Recorder(control_plane)


async def watch_opened(recorder: Recorder, since: int) -> None:
    """Until a watch sent after the first `since` requests has been answered 200."""
    with trio.fail_after(30):
        while not any(  # noqa: ASYNC110 - another task's request, no event to wait on
            verb == "watch" and status == 200 for verb, _, status in recorder.requests[since:]
        ):
            await trio.sleep(0.01)


@pytest.fixture
async def client(
    control_plane: ControlPlane, users: Mapping[str, TestUser], recorder: Recorder
) -> AsyncGenerator[KubeClient]:
    async with open_client(control_plane, users["everything"], recorder) as kube:
        yield kube


@pytest.fixture(params=list(LOCK_TYPES))
def resource(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


_names = iter(range(10**6))


@pytest.fixture
def name() -> str:
    return f"lock-{next(_names)}"


def admin_object(control_plane: ControlPlane, namespace: str, resource: str, name: str) -> Any:
    with control_plane.http_client() as admin:
        response = admin.get(f"{collection(namespace, resource)}/{name}")
    return response.json() if response.status_code == 200 else None


def admin_put_other(control_plane: ControlPlane, namespace: str, resource: str, name: str) -> None:
    """An object as another tool left it: labels, other annotations, other fields."""
    obj: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1" if resource == "leases" else "v1",
        "kind": {"leases": "Lease", "endpoints": "Endpoints", "configmaps": "ConfigMap"}[resource],
        "metadata": {
            "name": name,
            "labels": {"app": "x"},
            "annotations": {"keep.example.com/me": "yes"},
        },
    }
    if resource == "leases":
        obj["spec"] = {"leaseDurationSeconds": 30}
    elif resource == "configmaps":
        obj["data"] = {"config.yaml": "a: 1"}
    with control_plane.http_client() as admin:
        created = admin.post(collection(namespace, resource), json=obj)
    assert created.status_code == 201, created.text


def assert_kept(obj: Any, resource: str) -> None:
    assert obj["metadata"]["labels"] == {"app": "x"}
    assert obj["metadata"]["annotations"]["keep.example.com/me"] == "yes"
    if resource == "configmaps":
        assert obj["data"] == {"config.yaml": "a: 1"}


def mine(second: int = 0, holder: str = "me") -> te.LeaderRecord:
    return te.LeaderRecord(holder, 15, T0, T0 + dt.timedelta(seconds=second), 0)


# ---------------------------------------------------------------- round trips


async def test_create_get_update(
    control_plane: ControlPlane,
    namespace: str,
    client: KubeClient,
    recorder: Recorder,
    resource: str,
    name: str,
) -> None:
    lock = LOCK_TYPES[resource](namespace, name, client)
    assert not (await lock.get()).exists
    created = await lock.create(mine())
    assert created.holder == "me"
    assert await lock.get() == created
    renewed = await lock.update(mine(2), created)
    assert int(renewed.version) > int(created.version)
    assert recorder.verbs() == ["get", "create", "get", "patch"]
    stored = admin_object(control_plane, namespace, resource, name)
    if resource == "leases":
        assert stored["spec"] == {
            "holderIdentity": "me",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-05-01T10:05:02.654321Z",
            "renewTime": "2024-05-01T10:05:04.654321Z",
            "leaseTransitions": 0,
        }
    else:
        assert stored["metadata"]["annotations"][LEADER_ANNOTATION] == (
            '{"holderIdentity":"me","leaseDurationSeconds":15,"acquireTime":'
            '"2024-05-01T10:05:02Z","renewTime":"2024-05-01T10:05:04Z","leaderTransitions":0}'
        )


async def test_a_write_that_changes_nothing_keeps_the_version(
    namespace: str, client: KubeClient, resource: str, name: str
) -> None:
    lock = LOCK_TYPES[resource](namespace, name, client)
    created = await lock.create(mine())
    assert (await lock.update(mine(), created)).version == created.version


async def test_conflicts(namespace: str, client: KubeClient, resource: str, name: str) -> None:
    lock = LOCK_TYPES[resource](namespace, name, client)
    other = LOCK_TYPES[resource](namespace, name, client)
    created = await lock.create(mine())
    with pytest.raises(te.LockConflict):
        await other.create(mine(holder="other"))
    await other.update(mine(1, "other"), created)
    with pytest.raises(te.LockConflict):
        await lock.update(mine(2), created)
    assert (await lock.get()).holder == "other"


@pytest.mark.parametrize("profile", ["with-patch", "get-create-update"])
async def test_other_fields_survive(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    recorder: Recorder,
    resource: str,
    name: str,
    profile: str,
) -> None:
    admin_put_other(control_plane, namespace, resource, name)
    async with open_client(control_plane, users[profile], recorder) as kube:
        lock = LOCK_TYPES[resource](namespace, name, kube)
        obs = await lock.get()
        assert obs.record == te.LeaderRecord(
            lease_duration_seconds=30 if resource == "leases" else 0
        )
        obs = await lock.update(mine(), obs)
        obs = await lock.update(te.LeaderRecord("", 1, T0, T0, 0), obs)
        assert obs.holder is None
    assert_kept(admin_object(control_plane, namespace, resource, name), resource)


async def test_deleted_object(
    control_plane: ControlPlane, namespace: str, client: KubeClient, resource: str, name: str
) -> None:
    lock = LOCK_TYPES[resource](namespace, name, client)
    created = await lock.create(mine())
    with control_plane.http_client() as admin:
        assert admin.delete(f"{collection(namespace, resource)}/{name}").status_code == 200
    assert not (await lock.get()).exists
    with pytest.raises(te.LockNotFound):
        await lock.update(mine(2), created)


async def test_errors_are_translated(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    recorder: Recorder,
    name: str,
) -> None:
    async with open_client(control_plane, users["everything"], recorder) as kube:
        lock = LeaseLock(namespace, name, kube)
        obs = await lock.create(mine())
        recorder.hang()
        with trio.move_on_after(0.5) as scope:
            await lock.update(mine(1), obs)
        assert scope.cancelled_caught
        recorder.heal()
    bad = KubeConfig(server="https://127.0.0.1:1", namespace=namespace, token="x")
    async with KubeClient(bad, transport=httpx.AsyncHTTPTransport()) as unreachable:
        with pytest.raises(te.LockError):
            await LeaseLock(namespace, name, unreachable).get()


async def test_lease_in_a_missing_namespace(
    control_plane: ControlPlane, recorder: Recorder
) -> None:
    async with open_client(control_plane, None, recorder) as admin:
        lock = LeaseLock("no-such-namespace", "x", admin)
        assert not (await lock.get()).exists
        with pytest.raises(
            te.ElectionError, match='namespaces "no-such-namespace" not found'
        ) as caught:
            await lock.create(mine())
        assert not isinstance(caught.value, te.LockError)


# ---------------------------------------------------------------- RBAC profiles


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """A grace window for 403s of 1 s instead of 15 s, to keep these tests short."""
    monkeypatch.setattr(_forbidden, "FORBIDDEN_GRACE_SECONDS", 1.0)
    return 1.0


async def test_nothing_allowed(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    recorder: Recorder,
    resource: str,
    name: str,
    short_grace: float,
) -> None:
    async with open_client(control_plane, users["nothing"], recorder) as kube:
        lock = LOCK_TYPES[resource](namespace, name, kube)
        # first retried, in case the apiserver has just started; then a missing permission
        with pytest.raises(te.LockError, match=f'cannot get resource "{resource}"'):
            await lock.get()
        await trio.sleep(short_grace)
        with pytest.raises(ForbiddenError) as caught:
            await lock.get()
        assert not isinstance(caught.value, te.LockError)
        message = str(caught.value)
        assert f'cannot get resource "{resource}"' in message
        assert f'Grant the "get" verb on "{resource}"' in message
        assert users["nothing"].username in message
        with pytest.raises(te.LockError, match=f'cannot create resource "{resource}"'):
            await lock.create(mine())
        await trio.sleep(short_grace)
        with pytest.raises(ForbiddenError, match=f'cannot create resource "{resource}"'):
            await lock.create(mine())
        # a fresh handle: its first 403 is retried, the next (one retry period later, past
        # the grace window) is fatal. Counted in requests, not timed: a loaded machine makes
        # each request slow, not the rule different (the bound only stops a hang)
        recorder.requests.clear()
        with (
            trio.fail_after(60),
            pytest.raises(ForbiddenError, match=f'cannot get resource "{resource}"'),
        ):
            async with te.elect(
                lock.with_client(kube),
                identity="x",
                client=kube,
                lease_duration=4 * short_grace,
                renew_deadline=3 * short_grace,
                retry_period=short_grace,
            ):
                pytest.fail("never leads")  # pragma: no cover
        assert recorder.requests == [("get", resource, 403)] * 2


@pytest.mark.parametrize("profile", list(PROFILES))
async def test_profiles(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    recorder: Recorder,
    resource: str,
    name: str,
    profile: str,
    caplog: pytest.LogCaptureFixture,
    short_grace: float,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    may_patch = "patch" in PROFILES[profile]
    may_watch = "watch" in PROFILES[profile]
    async with open_client(control_plane, users[profile], recorder) as kube:
        lock = LOCK_TYPES[resource](namespace, name, kube)
        obs = await lock.create(mine())
        for second in range(1, 5):
            obs = await lock.update(mine(second), obs)
        writes = [(verb, status) for verb, _, status in recorder.requests[1:]]
        if may_patch:
            assert writes == [("patch", 200)] * 4
        else:
            # three writes with patch refused and PUT working, then PUT only
            assert writes == [("patch", 403), ("update", 200)] * 3 + [("update", 200)]
            notes = [r for r in caplog.records if "not allowed to patch" in r.getMessage()]
            assert len(notes) == 1
            assert f'cannot patch resource "{resource}"' in notes[0].getMessage()
        watcher = LOCK_TYPES[resource](namespace, name, kube)
        if not may_watch:
            with pytest.raises(te.LockError) as caught:  # for the grace window: retried
                async with aclosing(watcher.watch(obs)) as events:
                    async for _ in events:
                        pass  # pragma: no cover
            assert type(caught.value) is te.LockError
            await trio.sleep(short_grace)
            with pytest.raises(te.WatchUnavailable, match=f'cannot watch resource "{resource}"'):
                async with aclosing(watcher.watch(obs)) as events:
                    async for _ in events:
                        pass  # pragma: no cover
            return
        seen = Seen()
        async with trio.open_nursery() as nursery:
            sent = len(recorder.requests)
            nursery.start_soon(seen.follow, watcher, obs)
            await watch_opened(recorder, sent)
            renewed = await lock.update(mine(10), obs)
            await seen.wait_for(1)
            nursery.cancel_scope.cancel()
        assert seen.items == [renewed]


# ---------------------------------------------------------------- watch


async def test_watch_events(
    control_plane: ControlPlane,
    namespace: str,
    client: KubeClient,
    recorder: Recorder,
    resource: str,
    name: str,
) -> None:
    writer = LOCK_TYPES[resource](namespace, name, client)
    watcher = LOCK_TYPES[resource](namespace, name, client)
    seen = Seen()
    async with trio.open_nursery() as nursery:
        sent = len(recorder.requests)
        nursery.start_soon(seen.follow, watcher, te.Observation(False, None, ""))
        await watch_opened(recorder, sent)
        created = await writer.create(mine())  # the watch started from a missing object
        await seen.wait_for(1)
        renewed = await writer.update(mine(2), created)
        await seen.wait_for(2)
        with control_plane.http_client() as admin:
            assert admin.delete(f"{collection(namespace, resource)}/{name}").status_code == 200
        await seen.wait_for(3)
        again = await writer.create(mine(holder="again"))
        await seen.wait_for(4)
        nursery.cancel_scope.cancel()
    assert seen.items == [created, renewed, te.Observation(False, None, ""), again]


async def test_watch_from_a_compacted_version_rereads(
    namespace: str, client: KubeClient, recorder: Recorder, name: str
) -> None:
    lock = LeaseLock(namespace, name, client)
    created = await lock.create(mine())
    ancient = te.Observation(True, created.record, "1", created.raw)
    seen: list[te.Observation] = []
    with trio.move_on_after(1):
        async with aclosing(lock.watch(ancient)) as events:
            async for event in events:
                seen.append(event)
    # the apiserver either replays the object or answers 410 (then the lock re-lists)
    assert seen[:1] == [created]


# ---------------------------------------------------------------- MultiLock


@pytest.mark.parametrize("old", ["endpoints", "configmaps"])
async def test_multilock_steps(
    control_plane: ControlPlane,
    namespace: str,
    client: KubeClient,
    recorder: Recorder,
    old: str,
    name: str,
) -> None:
    legacy = LOCK_TYPES[old](namespace, name, client)
    multi = lock_from_string(f"{old}leases/{namespace}/{name}", client)
    assert isinstance(multi, MultiLock)
    await legacy.create(mine(holder="old-client"))
    obs = await multi.get()
    assert obs.holder == "old-client"  # the secondary is missing: the primary stands
    taken = await multi.update(mine(20), obs)
    assert taken.holder == "me"
    assert admin_object(control_plane, namespace, "leases", name)["spec"]["holderIdentity"] == "me"
    renewed = await multi.update(mine(22), taken)
    assert renewed == await multi.get()
    lease = LeaseLock(namespace, name, client)
    await lease.update(mine(23, "lease-only"), await lease.get())
    assert (await multi.get()).holder == te.UNKNOWN_HOLDER
    with pytest.raises(te.LockConflict):
        await multi.update(mine(24), renewed)


# ---------------------------------------------------------------- kubectl


def test_kubectl_reads_our_lease(
    control_plane: ControlPlane, namespace: str, users: Mapping[str, TestUser], name: str
) -> None:
    async def write() -> None:
        async with open_client(control_plane, users["everything"], Recorder(control_plane)) as kube:
            lock = LeaseLock(namespace, name, kube)
            await lock.create(te.LeaderRecord("me_1", 15, WHOLE, T0, 3))

    trio.run(write)
    shown = control_plane.kubectl("get", "lease", name, "-n", namespace, "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    assert 'acquireTime: "2024-05-01T10:05:02.000000Z"' in shown.stdout
    assert 'renewTime: "2024-05-01T10:05:02.654321Z"' in shown.stdout
    spec = yaml.safe_load(shown.stdout)["spec"]
    assert spec == {
        "holderIdentity": "me_1",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-05-01T10:05:02.000000Z",
        "renewTime": "2024-05-01T10:05:02.654321Z",
        "leaseTransitions": 3,
    }


def test_we_read_a_lease_from_kubectl_apply(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    name: str,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "lease.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "labels": {"from": "kubectl"}},
                "spec": {
                    "holderIdentity": "go-candidate_42",
                    "leaseDurationSeconds": 17,
                    "acquireTime": "2024-05-01T10:05:02.000000Z",
                    "renewTime": "2024-05-01T10:06:00.123456Z",
                    "leaseTransitions": 9,
                },
            }
        )
    )
    applied = control_plane.kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    async def read() -> te.Observation:
        async with open_client(control_plane, users["everything"], Recorder(control_plane)) as kube:
            return await LeaseLock(namespace, name, kube).get()

    obs = trio.run(read)
    assert obs.record == te.LeaderRecord(
        "go-candidate_42",
        17,
        dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1, 10, 6, 0, 123456, tzinfo=dt.UTC),
        9,
    )
    assert json.loads(obs.raw)["holderIdentity"] == "go-candidate_42"


# ---------------------------------------------------------------- an apiserver restart


async def test_an_apiserver_restart_is_retried(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    recorder: Recorder,
    name: str,
) -> None:
    """Across a real restart (refused connections, then, for a moment, 403 for bound users
    while the RBAC caches fill) a handle whose verbs have worked sees only `LockError`s:
    it keeps PATCHing and watching, and never takes the 403 for a missing permission."""
    async with open_client(control_plane, users["everything"], recorder) as kube:
        writer = LeaseLock(namespace, name, kube)
        watcher = LeaseLock(namespace, name, kube)
        obs = await writer.create(mine())
        seen = Seen()
        async with trio.open_nursery() as nursery:
            sent = len(recorder.requests)
            nursery.start_soon(seen.follow, watcher, obs)
            await watch_opened(recorder, sent)
            obs = await writer.update(mine(1), obs)
            await seen.wait_for(1)  # get, patch and watch have all worked
            nursery.cancel_scope.cancel()
        failures: list[te.LockError] = []
        restarted = trio.Event()
        second = 1

        async def write_until_healed() -> None:
            nonlocal obs, second
            healthy_since = None
            while healthy_since is None or trio.current_time() - healthy_since < 2:
                second += 1
                try:
                    obs = await writer.update(mine(second), await writer.get())
                except te.LockError as exc:
                    failures.append(exc)
                    healthy_since = None
                else:
                    if restarted.is_set() and healthy_since is None:
                        healthy_since = trio.current_time()
                await trio.sleep(0.02)

        async def watch_until_healed() -> None:
            last = obs
            while True:
                try:
                    async with aclosing(watcher.watch(last)) as events:
                        async for event in events:
                            if restarted.is_set():
                                return  # watching again after the restart
                            last = event
                except te.WatchUnavailable:
                    raise  # a 403 taken for a missing watch permission: the old mistake
                except te.LockError as exc:
                    failures.append(exc)
                    await trio.sleep(0.05)

        try:
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(write_until_healed)
                    nursery.start_soon(watch_until_healed)
                    await trio.to_thread.run_sync(control_plane.restart_apiserver)
                    restarted.set()
        finally:
            await trio.to_thread.run_sync(control_plane.ensure_running)
            for user in users.values():
                await trio.to_thread.run_sync(control_plane.wait_for_rights, user)
    assert failures  # the restart was seen
    writes = [(verb, status) for verb, _, status in recorder.requests if verb != "get"]
    assert ("update", 200) not in writes  # PATCH throughout: never switched to PUT
    assert writes[-1] == ("patch", 200)
