"""`nominate()`: the successor named in an annotation beside the record, on every lock kind.

What client-go reads (the Lease's spec, or the leader annotation) is never touched by a
nomination; the record's writes (renew, release) keep the annotation; every write is
conditional on the version it was based on.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pytest

import trio_election as te
from trio_election._core._lock import Nomination
from trio_election._kube_locks import LEADER_ANNOTATION, EndpointsLock, LeaseLock, MultiLock
from trio_election._kube_locks._records import NOMINEE_ANNOTATION

if TYPE_CHECKING:
    from trio_election._kube import KubeClient
    from trio_election._kube_locks import KubeLock
    from trio_election.testing._fake_api import FakeKubeApi

T0 = dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=dt.UTC)


def rec(holder: str, second: int = 0, transitions: int = 3) -> te.LeaderRecord:
    return te.LeaderRecord(holder, 15, T0, T0 + dt.timedelta(seconds=second), transitions)


def what_client_go_reads(obj: dict[str, Any], resource: str) -> object:
    if resource == "leases":
        return obj["spec"]
    return obj["metadata"]["annotations"][LEADER_ANNOTATION]


def annotation(api: FakeKubeApi, resource: str) -> object:
    obj = api.get_object(resource, "my-app")
    assert obj is not None
    return obj["metadata"].get("annotations", {}).get(NOMINEE_ANNOTATION)


async def test_a_nomination_is_an_annotation_beside_the_record(
    lock: KubeLock, api: FakeKubeApi, resource: str
) -> None:
    held = await lock.create(rec("a"))
    before = api.get_object(resource, "my-app")
    assert before is not None
    named = await lock.nominate(Nomination("b", 3), held)
    assert named.nominee == Nomination("b", 3)
    assert named.successor == "b"
    assert named.record == held.record
    assert named.raw == held.raw  # the record did not change: no one's lease restarts
    assert named.version != held.version
    after = api.get_object(resource, "my-app")
    assert after is not None
    assert what_client_go_reads(after, resource) == what_client_go_reads(before, resource)
    assert json.loads(str(annotation(api, resource))) == {"identity": "b", "term": 3}
    assert (await lock.with_client(lock.client).get()).nominee == Nomination("b", 3)  # type: ignore[arg-type]


async def test_a_nomination_is_conditional(lock: KubeLock) -> None:
    held = await lock.create(rec("a"))
    renewed = await lock.update(rec("a", second=2), held)
    with pytest.raises(te.LockConflict):  # never over a renew it did not see
        await lock.nominate(Nomination("b", 3), held)
    assert (await lock.get()).nominee is None
    assert (await lock.nominate(Nomination("b", 3), renewed)).successor == "b"


async def test_renewals_and_the_release_keep_the_nomination(
    lock: KubeLock, api: FakeKubeApi, resource: str
) -> None:
    held = await lock.create(rec("a"))
    named = await lock.nominate(Nomination("b", 3), held)
    renewed = await lock.update(rec("a", second=2), named)
    assert renewed.successor == "b"
    released = await lock.update(te.LeaderRecord("", 1, T0, T0, 3), renewed)
    assert released.holder is None
    assert released.successor == "b"
    assert json.loads(str(annotation(api, resource))) == {"identity": "b", "term": 3}
    taken = await lock.update(rec("b", transitions=4), released)
    assert taken.nominee == Nomination("b", 3)
    assert taken.successor is None  # a nomination is for its term only


async def test_withdrawn(lock: KubeLock, api: FakeKubeApi, resource: str) -> None:
    named = await lock.nominate(Nomination("b", 3), await lock.create(rec("a")))
    withdrawn = await lock.nominate(None, named)
    assert withdrawn.nominee is None
    assert annotation(api, resource) is None
    assert withdrawn.record == named.record


@pytest.mark.parametrize(
    "value",
    [
        "",
        "b",
        "[]",
        '{"identity": 3, "term": 3}',
        '{"identity": "b"}',
        '{"identity": "b", "term": -1}',
    ],
)
async def test_an_unreadable_nomination_names_no_one(
    lock: KubeLock, api: FakeKubeApi, resource: str, value: str
) -> None:
    await lock.create(rec("a"))
    obj = api.get_object(resource, "my-app")
    assert obj is not None
    obj["metadata"].setdefault("annotations", {})[NOMINEE_ANNOTATION] = value
    api.put_object(resource, obj)
    seen = await lock.get()
    assert seen.nominee is None
    assert seen.holder == "a"


async def test_with_put_where_patch_is_refused(api: FakeKubeApi) -> None:
    verbs = ("get", "create", "update", "watch", "list")
    async with api.client(user="put-only", verbs={"leases": verbs}) as client:
        lock = LeaseLock("default", "my-app", client)
        held = await lock.create(rec("a"))
        named = await lock.nominate(Nomination("b", 3), held)
        assert named.successor == "b"
        assert [(r.verb, r.status) for r in api.requests][-2:] == [("patch", 403), ("update", 200)]
        assert (await lock.update(rec("a", second=2), named)).successor == "b"


async def test_multilock_names_the_successor_on_the_primary(
    client: KubeClient, api: FakeKubeApi
) -> None:
    multi = MultiLock(
        EndpointsLock("default", "my-app", client), LeaseLock("default", "my-app", client)
    )
    held = await multi.create(rec("a"))
    named = await multi.nominate(Nomination("b", 3), held)
    assert named.successor == "b"
    assert named.holder == "a"
    assert annotation(api, "endpoints") is not None
    assert annotation(api, "leases") is None
    renewed = await multi.update(rec("a", second=2), named)
    assert renewed.successor == "b"
    with pytest.raises(te.LockConflict):
        await multi.nominate(None, named)


async def test_a_term_begun_with_take_takes_nominations(
    lock: KubeLock, api: FakeKubeApi, resource: str
) -> None:
    created = await lock.take(rec("a"), te.Observation(False, None, ""), Nomination("", 3))
    assert created.nominee == Nomination("", 3)
    assert created.successor is None  # open: it names no one yet
    api.clear_requests()
    taken = await lock.take(rec("b", transitions=4), created, Nomination("", 4))
    assert [(r.verb, r.status) for r in api.requests] == [("patch", 200)]  # one write
    assert taken.record == rec("b", transitions=4)
    assert json.loads(str(annotation(api, resource))) == {"identity": "", "term": 4}
    with pytest.raises(te.LockConflict):
        await lock.take(rec("c", transitions=5), created, Nomination("", 5))
