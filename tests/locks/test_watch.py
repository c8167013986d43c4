"""Watching a lock: events, resuming, bookmarks, 410 Gone, and when watching is not allowed."""

from __future__ import annotations

import datetime as dt
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._lock import MISSING
from trio_election._kube_locks._forbidden import FORBIDDEN_GRACE_SECONDS
from trio_election.testing._fake_api import FakeKubeApi

from .conftest import LOCK_TYPES

if TYPE_CHECKING:
    from trio_election._kube import KubeClient
    from trio_election._kube_locks import KubeLock

T0 = dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=dt.UTC)


def rec(holder: str, second: int = 0) -> te.LeaderRecord:
    return te.LeaderRecord(holder, 15, T0, T0 + dt.timedelta(seconds=second), 0)


class Watcher:
    """Runs one watch in the background and keeps what it yields."""

    def __init__(self, lock: KubeLock, after: te.Observation) -> None:
        self.lock = lock
        self.after = after
        self.seen: list[te.Observation] = []
        self.error: BaseException | None = None
        self.ended = False

    async def run(self) -> None:
        try:
            async with aclosing(self.lock.watch(self.after)) as events:
                async for obs in events:
                    self.seen.append(obs)
        except te.LockError as exc:
            self.error = exc
        self.ended = True

    @property
    def holders(self) -> list[str | None]:
        return [obs.holder for obs in self.seen]


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_watch_request_and_events(api: FakeKubeApi, lock: KubeLock, resource: str) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", lock.client)
    first = await writer.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        (request,) = api.filter("watch")
        assert request.params == {
            "watch": "1",
            "fieldSelector": "metadata.name=my-app",
            "resourceVersion": first.version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        obs = await writer.update(rec("a", 2), first)
        obs = await writer.update(rec("b", 4), obs)
        await settle()
        assert [o.version for o in watcher.seen] == [str(int(first.version) + 1), obs.version]
        assert watcher.holders == ["a", "b"]
        api.delete_object(resource, "my-app")
        await settle()
        assert watcher.seen[-1] == MISSING
        await writer.create(rec("c"))
        await settle()
        assert watcher.holders == ["a", "b", None, "c"]
        # other objects of the same kind are not seen
        await LOCK_TYPES[resource]("default", "other", lock.client).create(rec("x"))
        await settle()
        assert len(watcher.seen) == 4
        assert api.count("watch") == 1
        nursery.cancel_scope.cancel()


async def test_query_string_is_encoded_as_the_apiserver_expects(
    api: FakeKubeApi, lock: KubeLock, autojump_clock: trio.testing.MockClock
) -> None:
    first = await lock.create(rec("a"))
    with trio.move_on_after(1):
        async with aclosing(lock.watch(first)) as events:
            async for _ in events:
                pass  # pragma: no cover
    (request,) = api.filter("watch")
    assert request.query.startswith(
        f"watch=1&fieldSelector=metadata.name%3Dmy-app&resourceVersion={first.version}"
        f"&allowWatchBookmarks=true&timeoutSeconds=300"
    )


async def test_watch_from_a_missing_object_catches_its_creation(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", lock.client)
    await LOCK_TYPES[resource]("default", "unrelated", lock.client).create(rec("x"))
    watcher = Watcher(lock, MISSING)
    api.hang_next(verb="watch")  # the object is created after the list, before the watch
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        (listing,) = api.filter("list")
        assert listing.params == {"fieldSelector": "metadata.name=my-app"}
        listed_at = api.revision
        await writer.create(rec("a"))
        api.heal()
        await settle()
        (request,) = api.filter("watch")
        assert request.params["resourceVersion"] == str(listed_at)
        assert watcher.holders == ["a"]
        nursery.cancel_scope.cancel()


async def test_watch_yields_the_current_state_when_after_is_missing_but_it_exists(
    api: FakeKubeApi, lock: KubeLock
) -> None:
    await lock.create(rec("a"))
    watcher = Watcher(lock, MISSING)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        assert watcher.holders == ["a"]
        nursery.cancel_scope.cancel()


async def test_without_list_it_watches_from_now(api: FakeKubeApi, resource: str) -> None:
    verbs = {resource: {"get", "create", "update", "patch", "watch"}}
    async with api.client(verbs=verbs) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        writer = LOCK_TYPES[resource]("default", "my-app", kube)
        watcher = Watcher(lock, MISSING)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            await settle()
            assert [r.verb for r in api.requests] == ["list", "get", "watch"]
            assert "resourceVersion" not in api.filter("watch")[0].params
            obs = await writer.create(rec("a"))
            await settle()
            assert watcher.holders == ["a"]
            nursery.cancel_scope.cancel()
        # an object that exists is sent as ADDED first: not yielded twice
        watcher = Watcher(lock, obs)
        lock._resume = None
        async with trio.open_nursery() as nursery:
            api.fail_next(verb="watch", status=410, reason="Expired")
            nursery.start_soon(watcher.run)
            await settle()
            assert watcher.seen == []
            await writer.update(rec("b"), obs)
            await settle()
            assert watcher.holders == ["b"]
            nursery.cancel_scope.cancel()


async def test_stream_ends_at_the_server_timeout(
    api: FakeKubeApi, lock: KubeLock, autojump_clock: trio.testing.MockClock
) -> None:
    first = await lock.create(rec("a"))
    start = trio.current_time()
    watcher = Watcher(lock, first)
    await watcher.run()
    assert watcher.ended
    assert watcher.error is None
    assert trio.current_time() - start == pytest.approx(300)


async def test_bookmarks_move_the_resume_version(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    first = await lock.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        for i in range(3):
            await LOCK_TYPES[resource]("default", f"other-{i}", lock.client).create(rec("x"))
        api.bookmark()
        await settle()
        assert watcher.seen == []  # a bookmark is not a change
        api.end_watches()
        await settle()
        assert watcher.ended
    bookmark = api.revision
    watcher = Watcher(lock, first)  # the engine watches again from what it knows
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        assert api.filter("watch")[-1].params["resourceVersion"] == str(bookmark)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("gone_as_status", [False, True])
async def test_gone_rereads_and_goes_on(gone_as_status: bool, resource: str) -> None:
    api = FakeKubeApi(gone_as_status=gone_as_status)
    async with api.client() as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        writer = LOCK_TYPES[resource]("default", "my-app", kube)
        old = await writer.create(rec("a"))
        now = await writer.update(rec("b"), old)
        api.compact()
        watcher = Watcher(
            lock, te.Observation(True, old.record, str(int(old.version) - 1), old.raw)
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            await settle()
            assert [r.verb for r in api.requests[2:]] == ["watch", "list", "watch"]
            assert watcher.seen == [now]
            assert api.filter("watch")[-1].params["resourceVersion"] == str(api.revision)
            await writer.update(rec("c"), now)
            await settle()
            assert watcher.holders == ["b", "c"]
            nursery.cancel_scope.cancel()


async def test_gone_during_the_stream(api: FakeKubeApi, lock: KubeLock, resource: str) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", lock.client)
    first = await writer.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        api.expire_watches()
        await settle()
        assert watcher.seen == []  # re-read, nothing changed
        assert [r.verb for r in api.requests[1:]] == ["watch", "list", "watch"]
        await writer.update(rec("b"), first)
        await settle()
        assert watcher.holders == ["b"]
        nursery.cancel_scope.cancel()


async def test_a_gone_event_relists_without_waiting_for_the_stream_to_end(
    api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    writer = LOCK_TYPES[resource]("default", "my-app", lock.client)
    first = await writer.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        (w,) = api._watchers
        expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
        w.pending.append({"type": "ERROR", "object": expired})  # the stream stays open
        await writer.update(rec("b"), first)
        await settle()
        assert [r.verb for r in api.requests[1:]] == ["watch", "patch", "list", "watch"]
        assert watcher.holders == ["b"]  # read by the list
        assert watcher.error is None
        nursery.cancel_scope.cancel()


async def test_a_broken_stream_is_a_lock_error(api: FakeKubeApi, lock: KubeLock) -> None:
    first = await lock.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        api.break_watches()
    assert type(watcher.error) is te.LockError


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, te.LockError), (503, te.LockError), (429, te.LockError), (405, te.WatchUnavailable)],
)
async def test_watch_open_errors(
    api: FakeKubeApi, lock: KubeLock, status: int, error: type[te.LockError]
) -> None:
    first = await lock.create(rec("a"))
    api.fail_next(verb="watch", status=status, reason="MethodNotAllowed" if status == 405 else None)
    with pytest.raises(te.LockError) as caught:
        async with aclosing(lock.watch(first)) as events:
            async for _ in events:
                pass  # pragma: no cover
    assert type(caught.value) is error


async def test_watch_forbidden_is_unavailable(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, resource: str
) -> None:
    async with api.client(verbs={resource: {"get", "create", "update"}}) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        first = await lock.create(rec("a"))
        # a 403 may be an apiserver that has just started: the engine retries the watch for
        # the grace window; past it the lock cannot be watched, and the engine polls
        with pytest.raises(te.LockError, match="cannot watch") as caught:
            async with aclosing(lock.watch(first)) as events:
                async for _ in events:
                    pass  # pragma: no cover
        assert type(caught.value) is te.LockError
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(te.WatchUnavailable, match="cannot watch"):
            async with aclosing(lock.watch(first)) as events:
                async for _ in events:
                    pass  # pragma: no cover


async def test_an_error_event_other_than_gone(
    api: FakeKubeApi, lock: KubeLock, client: KubeClient
) -> None:
    first = await lock.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        (w,) = api._watchers
        w.pending.append(
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "code": 500,
                    "reason": "InternalError",
                    "message": "boom",
                },
            }
        )
        api.end_watches()  # the apiserver ends the stream after an ERROR event
    assert isinstance(watcher.error, te.LockError)
    assert "boom" in str(watcher.error)


async def test_a_malformed_event(api: FakeKubeApi, lock: KubeLock) -> None:
    first = await lock.create(rec("a"))
    watcher = Watcher(lock, first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await settle()
        (w,) = api._watchers
        w.pending.append({"type": "MODIFIED", "object": "garbage"})
        api.end_watches()
    assert isinstance(watcher.error, te.LockError)
    assert "malformed" in str(watcher.error)


async def test_a_lagging_event_does_not_replace_a_newer_object(
    api: FakeKubeApi, lock: KubeLock
) -> None:
    first = await lock.create(rec("a"))
    newer = await lock.update(rec("a", 2), first)
    lock._observe({"metadata": {"name": "my-app", "resourceVersion": first.version}})
    assert lock._cached is not None
    assert lock._cached["metadata"]["resourceVersion"] == newer.version
