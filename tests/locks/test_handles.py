"""Every operation of the Kubernetes locks against the in-memory API: exact requests."""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._kube._errors import (
    ForbiddenError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
)
from trio_election._kube_locks import LEADER_ANNOTATION, KubeLock, LeaseLock
from trio_election._kube_locks._forbidden import FORBIDDEN_GRACE_SECONDS
from trio_election.testing._fake_api import ELECTION_VERBS, FakeKubeApi

from .conftest import LOCK_TYPES

if TYPE_CHECKING:
    from trio_election._kube import KubeClient

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 10, 5, 2, 654321, tzinfo=UTC)
T1 = dt.datetime(2024, 5, 1, 10, 5, 4, 0, tzinfo=UTC)
MINE = te.LeaderRecord("me", 15, T0, T0, 0)
RENEWED = te.LeaderRecord("me", 15, T0, T1, 0)


def stored_record(api: FakeKubeApi, resource: str, name: str = "my-app") -> Any:
    obj = api.get_object(resource, name)
    assert obj is not None
    if resource == "leases":
        return obj.get("spec")
    return obj["metadata"].get("annotations", {}).get(LEADER_ANNOTATION)


def other_object(resource: str, name: str = "my-app") -> dict[str, Any]:
    """An object as another tool left it: labels, other annotations, other fields."""
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "x"},
            "annotations": {"keep.example.com/me": "yes"},
        }
    }
    if resource == "leases":
        obj["spec"] = {"strategy": "OldestEmulationVersion", "preferredHolder": "p"}
    elif resource == "configmaps":
        obj["data"] = {"config.yaml": "a: 1"}
    else:
        obj["subsets"] = []
    return obj


def assert_kept(api: FakeKubeApi, resource: str) -> None:
    obj = api.get_object(resource, "my-app")
    assert obj is not None
    assert obj["metadata"]["labels"] == {"app": "x"}
    assert obj["metadata"]["annotations"]["keep.example.com/me"] == "yes"
    if resource == "leases":
        assert obj["spec"]["strategy"] == "OldestEmulationVersion"
        assert obj["spec"]["preferredHolder"] == "p"
    elif resource == "configmaps":
        assert obj["data"] == {"config.yaml": "a: 1"}


# ---------------------------------------------------------------- names


async def test_description_and_repr(client: KubeClient) -> None:
    lock = LeaseLock("default", "my-app", client)
    assert lock.description == "leases/default/my-app"
    assert repr(lock) == "LeaseLock('default', 'my-app')"
    assert LOCK_TYPES["endpoints"]("ns", "a").description == "endpoints/ns/a"
    assert LOCK_TYPES["configmaps"]("ns", "a").description == "configmaps/ns/a"


async def test_is_a_lock_handle(lock: KubeLock) -> None:
    assert isinstance(lock, te.LockHandle)


async def test_with_client_gives_a_fresh_handle(lock: KubeLock, client: KubeClient) -> None:
    unbound = type(lock)("default", "my-app")
    assert unbound.client is None
    bound = unbound.with_client(client)
    assert type(bound) is type(lock)
    assert bound.client is client
    assert bound is not unbound
    assert bound.description == unbound.description


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("default", ""), ("default", "My-App"), ("Default", "a"), ("a/b", "x"), ("d", "a" * 254)],
)
def test_bad_names_are_refused(namespace: str, name: str) -> None:
    with pytest.raises(te.ConfigError, match="invalid"):
        LeaseLock(namespace, name)


async def test_a_handle_without_client_says_so() -> None:
    with pytest.raises(te.ConfigError, match="no Kubernetes client"):
        await LeaseLock("default", "my-app").get()


# ---------------------------------------------------------------- get and create


async def test_get_missing(api: FakeKubeApi, lock: KubeLock) -> None:
    assert await lock.get() == te.Observation(exists=False, record=None, version="", raw="")
    assert [str(r) for r in api.requests] == [f"get {lock.resource}/default/my-app -> 404"]


async def test_create_then_get(api: FakeKubeApi, lock: KubeLock, resource: str) -> None:
    created = await lock.create(MINE)
    assert created.exists
    assert created.record == MINE.__class__(
        "me",
        15,
        T0 if resource == "leases" else T0.replace(microsecond=0),
        T0 if resource == "leases" else T0.replace(microsecond=0),
        0,
    )
    assert created.version == str(api.revision)
    assert created.holder == "me"
    (post,) = api.filter("create")
    assert post.method == "POST"
    assert post.path.endswith(f"/namespaces/default/{resource}")
    got = await lock.get()
    assert got == created
    assert api.count() == 2


async def test_lease_wire_format(api: FakeKubeApi, client: KubeClient) -> None:
    lock = LeaseLock("default", "my-app", client)
    await lock.create(te.LeaderRecord("me", 15, T0.replace(microsecond=0), T0, 2))
    (post,) = api.filter("create")
    assert post.body == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "my-app", "namespace": "default"},
        "spec": {
            "holderIdentity": "me",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-05-01T10:05:02.000000Z",
            "renewTime": "2024-05-01T10:05:02.654321Z",
            "leaseTransitions": 2,
        },
    }
    assert post.path == "/apis/coordination.k8s.io/v1/namespaces/default/leases"


@pytest.mark.parametrize("resource", ["endpoints", "configmaps"])
async def test_annotation_wire_format(api: FakeKubeApi, lock: KubeLock, resource: str) -> None:
    await lock.create(te.LeaderRecord("me", 15, T0, T1, 23))
    expected = (
        '{"holderIdentity":"me","leaseDurationSeconds":15,"acquireTime":"2024-05-01T10:05:02Z",'
        '"renewTime":"2024-05-01T10:05:04Z","leaderTransitions":23}'
    )
    (post,) = api.filter("create")
    assert post.path == f"/api/v1/namespaces/default/{resource}"
    assert post.body == {
        "apiVersion": "v1",
        "kind": "Endpoints" if resource == "endpoints" else "ConfigMap",
        "metadata": {
            "name": "my-app",
            "namespace": "default",
            "annotations": {LEADER_ANNOTATION: expected},
        },
    }
    assert stored_record(api, resource) == expected
    got = await lock.get()
    assert got.raw == expected


async def test_create_existing_is_a_conflict(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    api.put_object(resource, other_object(resource))
    with pytest.raises(te.LockConflict, match="already exists"):
        await lock.create(MINE)
    assert_kept(api, resource)


async def test_object_without_record_is_free(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    api.put_object(resource, other_object(resource))
    got = await lock.get()
    assert got.exists
    assert got.record == te.LeaderRecord()
    assert got.holder is None


@pytest.mark.parametrize("resource", ["endpoints", "configmaps"])  # a Lease spec is validated
async def test_garbage_record_reads_as_unknown_holder(
    api: FakeKubeApi, resource: str, lock: KubeLock
) -> None:
    obj = other_object(resource)
    obj["metadata"]["annotations"][LEADER_ANNOTATION] = "{not json"
    api.put_object(resource, obj)
    got = await lock.get()
    assert got.exists
    assert got.record is None
    assert got.raw == "{not json"
    assert got.holder == te.UNKNOWN_HOLDER


# ---------------------------------------------------------------- update


async def test_update_is_one_merge_patch_with_the_version(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    created = await lock.create(MINE)
    api.clear_requests()
    renewed = await lock.update(RENEWED, created)
    (patch,) = api.requests
    assert patch.method == "PATCH"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["metadata"]["resourceVersion"] == created.version
    if resource == "leases":
        assert patch.body == {
            "metadata": {"resourceVersion": created.version},
            "spec": {
                "holderIdentity": "me",
                "leaseDurationSeconds": 15,
                "acquireTime": "2024-05-01T10:05:02.654321Z",
                "renewTime": "2024-05-01T10:05:04.000000Z",
                "leaseTransitions": 0,
            },
        }
    else:
        assert set(patch.body["metadata"]) == {"resourceVersion", "annotations"}
        assert set(patch.body["metadata"]["annotations"]) == {LEADER_ANNOTATION}
    assert int(renewed.version) > int(created.version)
    assert renewed.record is not None
    assert renewed.record.renew_time == T1


async def test_one_request_per_renew(api: FakeKubeApi, lock: KubeLock) -> None:
    obs = await lock.create(MINE)
    api.clear_requests()
    for i in range(10):
        obs = await lock.update(te.LeaderRecord("me", 15, T0, T1 + dt.timedelta(seconds=i), 0), obs)
    assert api.count() == 10
    assert api.count("patch") == 10


async def test_update_with_a_stale_version_is_a_conflict(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    created = await lock.create(MINE)
    other = await LOCK_TYPES[resource]("default", "my-app", lock.client).update(
        te.LeaderRecord("other", 15, T1, T1, 1), created
    )
    with pytest.raises(te.LockConflict, match="modified"):
        await lock.update(RENEWED, created)
    assert (await lock.get()) == other


async def test_update_of_a_deleted_object(api: FakeKubeApi, lock: KubeLock, resource: str) -> None:
    created = await lock.create(MINE)
    api.delete_object(resource, "my-app")
    with pytest.raises(te.LockNotFound):
        await lock.update(RENEWED, created)
    with pytest.raises(te.LockNotFound):
        await lock.update(RENEWED, te.Observation(exists=False, record=None, version=""))


async def test_other_fields_survive_every_write(
    api: FakeKubeApi, resource: str, lock: KubeLock
) -> None:
    api.put_object(resource, other_object(resource))
    obs = await lock.get()
    obs = await lock.update(MINE, obs)
    assert_kept(api, resource)
    # the same through PUT
    put_only = LOCK_TYPES[resource]("default", "my-app", lock.client)
    put_only._put_until = math.inf
    obs = await put_only.update(RENEWED, await put_only.get())
    assert api.filter()[-1].method == "PUT"
    assert_kept(api, resource)
    obs = await put_only.update(te.LeaderRecord("", 1, T1, T1, 0), obs)
    assert_kept(api, resource)
    assert obs.holder is None


async def test_a_write_that_changes_nothing_keeps_the_version(
    api: FakeKubeApi, lock: KubeLock
) -> None:
    obs = await lock.create(MINE)
    again = await lock.update(MINE, obs)
    assert again.version == obs.version
    assert again.raw == obs.raw


async def test_annotation_renews_within_one_second_are_no_ops(
    api: FakeKubeApi, client: KubeClient
) -> None:
    lock = LOCK_TYPES["endpoints"]("default", "my-app", client)
    obs = await lock.create(te.LeaderRecord("me", 15, T1, T1, 0))
    later = te.LeaderRecord("me", 15, T1, T1 + dt.timedelta(microseconds=900_000), 0)
    assert (await lock.update(later, obs)).version == obs.version


# ---------------------------------------------------------------- PUT when patch is not allowed


@pytest.fixture
async def no_patch_client(api: FakeKubeApi) -> Any:
    verbs = dict.fromkeys(LOCK_TYPES, ELECTION_VERBS)
    async with api.client(verbs=verbs) as kube:
        yield kube


async def test_put_when_patch_is_forbidden(
    api: FakeKubeApi, resource: str, no_patch_client: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    lock = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    obs = await lock.create(MINE)
    api.clear_requests()
    obs = await lock.update(RENEWED, obs)
    assert [r.verb for r in api.requests] == ["patch", "update"]
    assert [r.status for r in api.requests] == [403, 200]
    put = api.requests[-1]
    assert put.body["metadata"]["resourceVersion"] != obs.version
    for i in range(5):
        obs = await lock.update(
            te.LeaderRecord("me", 15, T0, T1 + dt.timedelta(seconds=i + 1), 0), obs
        )
    # found out after PUT_AFTER_REFUSALS writes in a row, then remembered
    assert [r.verb for r in api.requests[2:]] == ["patch", "update"] * 2 + ["update"] * 3
    notes = [r for r in caplog.records if "not allowed to patch" in r.getMessage()]
    assert len(notes) == 1
    assert "cannot patch" in notes[0].getMessage()


async def test_put_reads_first_when_it_has_not_seen_the_version(
    api: FakeKubeApi, resource: str, no_patch_client: KubeClient
) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    obs = await writer.create(MINE)
    fresh = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    fresh._put_until = math.inf
    api.clear_requests()
    await fresh.update(RENEWED, obs)  # knows the version, not the object
    assert [r.verb for r in api.requests] == ["get", "update"]


async def test_put_never_overwrites_a_newer_object(
    api: FakeKubeApi, resource: str, no_patch_client: KubeClient
) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    obs = await writer.create(MINE)
    api.put_object(resource, {**other_object(resource)})
    loser = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    loser._put_until = math.inf
    with pytest.raises(te.LockConflict, match="changed since"):
        await loser.update(RENEWED, obs)
    assert api.count("update") == 0
    writer._put_until = math.inf
    with pytest.raises(te.LockConflict, match="modified"):
        await writer.update(RENEWED, obs)  # its cached object is stale: the apiserver says 409
    assert_kept(api, resource)


async def test_no_rights_at_all(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, resource: str
) -> None:
    async with api.client(verbs={}, user="nobody") as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        # retried for a while (an apiserver that has just started refuses too), then fatal
        with pytest.raises(te.LockError, match=f'cannot get resource "{resource}"'):
            await lock.get()
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(ForbiddenError, match=f'cannot get resource "{resource}"') as caught:
            await lock.get()
        assert not isinstance(caught.value, te.LockError)
        assert 'Grant the "get" verb' in str(caught.value)
        with pytest.raises(te.LockError, match=f'cannot create resource "{resource}"'):
            await lock.create(MINE)  # each verb has a window of its own
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(ForbiddenError, match=f'cannot create resource "{resource}"'):
            await lock.create(MINE)


async def test_patch_allowed_but_not_update(api: FakeKubeApi, resource: str) -> None:
    verbs = {resource: {"get", "create", "patch"}}
    async with api.client(verbs=verbs) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        obs = await lock.update(RENEWED, await lock.create(MINE))
        assert obs.record is not None
        assert obs.holder == "me"


async def test_neither_patch_nor_update(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, resource: str
) -> None:
    async with api.client(verbs={resource: {"get", "create"}}) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        obs = await lock.create(MINE)
        with pytest.raises(te.LockError, match=f'cannot update resource "{resource}"'):
            await lock.update(RENEWED, obs)
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(ForbiddenError, match=f'cannot update resource "{resource}"'):
            await lock.update(RENEWED, obs)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, None),
        (503, None),
        (504, None),
        (429, None),
        (0, httpx.ConnectError),
        (0, httpx.ReadTimeout),
    ],
)
async def test_transient_errors_are_lock_errors(
    api: FakeKubeApi, lock: KubeLock, status: int, error: type[httpx.RequestError] | None
) -> None:
    obs = await lock.create(MINE)
    for call in ("get", "create", "update"):
        api.fail_next(10, status=status or 500, error=error)
        with pytest.raises(te.LockError) as caught:
            if call == "get":
                await lock.get()
            elif call == "create":
                await lock.create(MINE)
            else:
                await lock.update(RENEWED, obs)
        assert type(caught.value) is te.LockError, call
        api.heal()


async def test_unauthorized_is_fatal_once_it_persists(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    await lock.get()  # the credentials worked once (a 401 before that is final at once)
    api.fail_next(10, status=401, reason="Unauthorized")
    with pytest.raises(te.LockError):  # a rotated token is read again: retried for a while
        await lock.get()
    await trio.sleep(FORBIDDEN_GRACE_SECONDS)
    with pytest.raises(UnauthorizedError) as caught:
        await lock.get()
    assert not isinstance(caught.value, te.LockError)


async def test_invalid_is_fatal(api: FakeKubeApi, client: KubeClient) -> None:
    lock = LeaseLock("default", "my-app", client)
    obs = await lock.create(MINE)
    api.fail_next(verb="patch", status=422, reason="Invalid")
    with pytest.raises(InvalidError):
        await lock.update(RENEWED, obs)


async def test_endpoints_warning_is_logged_once(
    api: FakeKubeApi, client: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lock = LOCK_TYPES["endpoints"]("default", "my-app", client)
    obs = await lock.create(MINE)
    for i in range(10):
        obs = await lock.update(te.LeaderRecord("me", 15, T0, T1 + dt.timedelta(seconds=i), 0), obs)
        await lock.get()
    assert api.count("patch", "endpoints") == 10
    warned = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warned) <= 1


async def test_put_to_a_deleted_object(
    api: FakeKubeApi, resource: str, no_patch_client: KubeClient
) -> None:
    lock = LOCK_TYPES[resource]("default", "my-app", no_patch_client)
    lock._put_until = math.inf
    obs = await lock.create(MINE)
    api.delete_object(resource, "my-app")
    if resource == "endpoints":
        # the apiserver creates Endpoints on update: the write lands, as a create would
        recreated = await lock.update(RENEWED, obs)
        assert recreated.holder == "me"
        assert api.get_object("endpoints", "my-app") is not None
    else:
        with pytest.raises(te.LockNotFound):
            await lock.update(RENEWED, obs)


async def test_missing_namespace(client: KubeClient) -> None:
    api = FakeKubeApi(namespaces={"default"})
    async with api.client() as kube:
        lock = LeaseLock("nowhere", "my-app", kube)
        assert not (await lock.get()).exists
        with pytest.raises(NotFoundError, match='namespaces "nowhere" not found'):
            await lock.create(MINE)
