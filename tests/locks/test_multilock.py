"""MultiLock: client-go's rules for a record kept in two objects, and lock strings."""

from __future__ import annotations

import datetime as dt
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest

import trio_election as te
from trio_election._kube_locks import (
    LEADER_ANNOTATION,
    ConfigMapLock,
    EndpointsLock,
    LeaseLock,
    MultiLock,
    lock_from_string,
)

if TYPE_CHECKING:
    from trio_election._kube import KubeClient
    from trio_election.testing._fake_api import FakeKubeApi

T0 = dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=dt.UTC)


def rec(holder: str, second: int = 0, transitions: int = 0) -> te.LeaderRecord:
    return te.LeaderRecord(holder, 15, T0, T0 + dt.timedelta(seconds=second), transitions)


@pytest.fixture(params=["endpoints", "configmaps"])
def old(request: pytest.FixtureRequest, client: KubeClient) -> EndpointsLock | ConfigMapLock:
    if request.param == "endpoints":
        return EndpointsLock("default", "my-app", client)
    return ConfigMapLock("default", "my-app", client)


@pytest.fixture
def new(client: KubeClient) -> LeaseLock:
    return LeaseLock("default", "my-app", client)


@pytest.fixture
def multi(old: EndpointsLock | ConfigMapLock, new: LeaseLock) -> MultiLock:
    return MultiLock(old.with_client(old.client), new.with_client(new.client))  # type: ignore[arg-type]


def holder_in(api: FakeKubeApi, resource: str) -> str | None:
    obj = api.get_object(resource, "my-app")
    if obj is None:
        return None
    if resource == "leases":
        holder: str = obj["spec"]["holderIdentity"]
        return holder
    return str(obj["metadata"]["annotations"][LEADER_ANNOTATION]).split('"')[3]


async def test_names(
    multi: MultiLock, old: EndpointsLock | ConfigMapLock, client: KubeClient
) -> None:
    assert multi.description == f"{old.resource}leases/default/my-app"
    assert isinstance(multi, te.LockHandle)
    assert multi.client is client
    bound = MultiLock(type(old)("default", "my-app"), LeaseLock("default", "my-app")).with_client(
        client
    )
    assert bound.client is client
    assert bound.primary.client is client
    assert bound.secondary.client is client
    odd = MultiLock(LeaseLock("a", "x"), LeaseLock("b", "y"))
    assert odd.description == "leases/a/x+leases/b/y"
    with pytest.raises(te.ConfigError, match="two different objects"):
        MultiLock(LeaseLock("a", "x"), LeaseLock("a", "x"))
    with pytest.raises(te.ConfigError, match="primary"):
        MultiLock(odd, LeaseLock("a", "x"))  # type: ignore[arg-type]


async def test_missing_primary_reads_as_missing(
    api: FakeKubeApi, multi: MultiLock, new: LeaseLock
) -> None:
    await new.create(rec("lease-only"))
    api.clear_requests()
    assert not (await multi.get()).exists
    assert [r.resource for r in api.requests] == [multi.primary.resource]  # no second read


async def test_old_leader_on_the_primary_only(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    await old.create(rec("old-client", transitions=4))
    got = await multi.get()
    assert got.exists
    assert got.holder == "old-client"
    assert got.record is not None
    assert got.record.leader_transitions == 4


async def test_create_writes_both(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    created = await multi.create(rec("me"))
    assert created.holder == "me"
    assert [(r.verb, r.resource) for r in api.requests] == [
        ("create", old.resource),
        ("create", "leases"),
    ]
    assert holder_in(api, old.resource) == "me"
    assert holder_in(api, "leases") == "me"
    assert await multi.get() == created


async def test_create_after_another_created_the_primary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    await old.create(rec("other"))
    with pytest.raises(te.LockConflict):
        await multi.create(rec("me"))
    assert api.get_object("leases", "my-app") is None  # the secondary was not written


async def test_create_keeps_going_when_the_primary_names_us(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    await old.create(rec("me"))  # client-go ignores AlreadyExists here
    created = await multi.create(rec("me"))
    assert created.holder == "me"
    assert holder_in(api, "leases") == "me"


async def test_create_with_an_existing_secondary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock, new: LeaseLock
) -> None:
    await new.create(rec("lease-only"))
    with pytest.raises(te.LockConflict):
        await multi.create(rec("me"))
    got = await multi.get()
    assert got.holder == te.UNKNOWN_HOLDER  # never free, never ours


async def test_holders_differ(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock, new: LeaseLock
) -> None:
    await old.create(rec("a"))
    lease = await new.create(rec("b"))
    got = await multi.get()
    assert got.holder == te.UNKNOWN_HOLDER
    # a change of either object is a change of the record (restarts the expiry wait)
    await new.update(rec("b", 2), lease)
    again = await multi.get()
    assert again.raw != got.raw
    assert again.version != got.version


async def test_garbage_primary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock, new: LeaseLock
) -> None:
    api.put_object(
        old.resource, {"metadata": {"name": "my-app", "annotations": {LEADER_ANNOTATION: "?"}}}
    )
    await new.create(rec("b"))
    assert (await multi.get()).holder == te.UNKNOWN_HOLDER


async def test_update_writes_primary_then_secondary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    obs = await multi.create(rec("me"))
    api.clear_requests()
    obs = await multi.update(rec("me", 2), obs)
    assert [(r.verb, r.resource) for r in api.requests] == [
        ("patch", old.resource),
        ("patch", "leases"),
    ]
    assert obs.holder == "me"
    assert obs == await multi.get()


async def test_update_creates_a_missing_secondary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    await old.create(rec("old-client"))
    obs = await multi.get()
    api.clear_requests()
    taken = await multi.update(rec("me", 20, 1), obs)
    assert [(r.verb, r.resource) for r in api.requests] == [
        ("patch", old.resource),
        ("create", "leases"),
    ]
    assert taken.holder == "me"
    assert holder_in(api, "leases") == "me"


async def test_update_with_a_changed_primary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock
) -> None:
    obs = await multi.create(rec("me"))
    await old.update(rec("other", 1, 1), await old.get())
    api.clear_requests()
    with pytest.raises(te.LockConflict):
        await multi.update(rec("me", 2), obs)
    assert [(r.verb, r.status) for r in api.requests] == [("patch", 409)]


async def test_update_with_a_changed_secondary(
    api: FakeKubeApi, multi: MultiLock, old: EndpointsLock | ConfigMapLock, new: LeaseLock
) -> None:
    obs = await multi.create(rec("me"))
    await new.update(rec("lease-only", 1, 1), await new.get())
    with pytest.raises(te.LockConflict):
        await multi.update(rec("me", 2), obs)
    assert holder_in(api, "leases") == "lease-only"  # never overwritten
    assert (await multi.get()).holder == te.UNKNOWN_HOLDER


async def test_update_when_the_secondary_was_deleted(api: FakeKubeApi, multi: MultiLock) -> None:
    obs = await multi.create(rec("me"))
    api.delete_object("leases", "my-app")
    renewed = await multi.update(rec("me", 2), obs)
    assert renewed.holder == "me"
    assert holder_in(api, "leases") == "me"


async def test_update_of_a_missing_lock(multi: MultiLock) -> None:
    with pytest.raises(te.LockNotFound):
        await multi.update(rec("me"), te.Observation(exists=False, record=None, version=""))


async def test_multilock_is_polled(multi: MultiLock) -> None:
    obs = await multi.create(rec("me"))
    with pytest.raises(te.WatchUnavailable, match="polled"):
        async with aclosing(multi.watch(obs)) as events:
            async for _ in events:
                pass  # pragma: no cover


# ---------------------------------------------------------------- lock strings


@pytest.mark.parametrize(
    ("spec", "kind", "description"),
    [
        ("leases/kube-system/my-app", LeaseLock, "leases/kube-system/my-app"),
        ("leases/my-app", LeaseLock, "leases/team-a/my-app"),
        ("endpoints/ns/a.b", EndpointsLock, "endpoints/ns/a.b"),
        ("configmaps/ns/x", ConfigMapLock, "configmaps/ns/x"),
        ("endpointsleases/ns/x", MultiLock, "endpointsleases/ns/x"),
        ("configmapsleases/x", MultiLock, "configmapsleases/team-a/x"),
    ],
)
async def test_lock_from_string(api: FakeKubeApi, spec: str, kind: type, description: str) -> None:
    async with api.client(namespace="team-a") as kube:
        lock = lock_from_string(spec, kube)
        assert type(lock) is kind
        assert lock.description == description
        assert lock.client is kube
        assert isinstance(lock, te.LockHandle)
        if isinstance(lock, MultiLock):
            assert isinstance(lock.secondary, LeaseLock)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "leases",
        "lease/default/x",
        "leases/default/x/y",
        "leases//x",
        "leases/default/",
        "Leases/default/x",
        "leases/Default/x",
        "pods/default/x",
    ],
)
async def test_bad_lock_strings(client: KubeClient, spec: str) -> None:
    with pytest.raises(te.ConfigError) as caught:
        lock_from_string(spec, client)
    message = str(caught.value)
    assert repr(spec) in message
    assert "'<resource>/<namespace>/<name>' or '<resource>/<name>'" in message
    assert "leases, endpoints, configmaps, endpointsleases, configmapsleases" in message
