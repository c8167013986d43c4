"""A 403 that will heal is retried; one that cannot is fatal (in virtual time).

An apiserver that has just started refuses requests of users with the right bindings for a
moment (its RBAC caches are filling). So a 403 for a verb that has worked before through the
handle, or one that has lasted less than the grace window, is a `LockError` (retried by the
engine); past the window it is the `ForbiddenError` itself (or `WatchUnavailable` for a
watch, and a fallback to PUT for a patch, which is tried again later).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._following import (
    POLLS_BEFORE_WATCHING_AGAIN,
    WATCH_FAILURES_BEFORE_POLLING,
)
from trio_election._core._timing import JITTER_FACTOR
from trio_election._kube._errors import ForbiddenError
from trio_election._kube_locks import EndpointsLock, LeaseLock, MultiLock
from trio_election._kube_locks._base import PATCH_RETRY_SECONDS, PUT_AFTER_REFUSALS
from trio_election._kube_locks._forbidden import FORBIDDEN_GRACE_SECONDS, QUIET_GAP_WINDOWS
from trio_election.kube import UnauthorizedError
from trio_election.testing import History, LoopClock
from trio_election.testing._fake_api import ALL_VERBS, ELECTION_VERBS, FakeKubeApi

from .conftest import LOCK_TYPES

if TYPE_CHECKING:
    from trio_election._kube_locks import KubeLock

T0 = dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=dt.UTC)
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FOREVER = 10**9
"""A count of faults that does not run out (until `heal()`)."""


def rec(holder: str, second: int = 0) -> te.LeaderRecord:
    return te.LeaderRecord(holder, 15, T0, T0 + dt.timedelta(seconds=second), 0)


def virtual_wall() -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=trio.current_time())


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def watch_until_closed(lock: KubeLock, after: te.Observation) -> list[te.Observation]:
    seen: list[te.Observation] = []
    async with aclosing(lock.watch(after)) as events:
        async for obs in events:
            seen.append(obs)
    return seen


async def watch_once(api: FakeKubeApi, lock: KubeLock, after: te.Observation) -> None:
    """Open a watch and let the server end it normally (it got past RBAC)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_until_closed, lock, after)
        await trio.testing.wait_all_tasks_blocked()
        assert api.open_watches == 1
        api.end_watches()


# ---------------------------------------------------------------- 403 after success


async def test_403_after_success_is_retried_until_it_has_lasted_the_window(
    autojump_clock: trio.testing.MockClock,
    api: FakeKubeApi,
    lock: KubeLock,
    resource: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    await lock.create(rec("me"))
    await lock.get()
    api.fail_next(FOREVER, verb="get", status=403)
    for _ in range(3):  # 0, 5, 10 s: inside the window, transient
        with pytest.raises(te.LockError, match=r"refused \(403\)") as caught:
            await lock.get()
        assert type(caught.value) is te.LockError
        assert isinstance(caught.value.__cause__, ForbiddenError)
        assert f'cannot get resource "{resource}"' in str(caught.value)
        await trio.sleep(5)
    with pytest.raises(ForbiddenError):  # 15 s: the Role was removed for good
        await lock.get()
    [warned] = messages(caplog, "403 on get")  # once per streak
    assert warned.levelno == logging.WARNING
    assert "has worked before" in warned.getMessage()
    api.heal()
    assert (await lock.get()).holder == "me"
    assert len(messages(caplog, "get is allowed again, after 4 refusal(s) (403)")) == 1
    # a new streak is told again, and is transient again
    api.fail_next(1, verb="get", status=403)
    with pytest.raises(te.LockError):
        await lock.get()
    assert len(messages(caplog, "403 on get")) == 2


async def test_a_401_is_retried_until_it_has_lasted_the_window(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    """A rotated token: the client reads it again after a 401; until then, retried."""
    await lock.create(rec("me"))
    api.fail_next(FOREVER, verb="get", status=401)
    with pytest.raises(te.LockError, match=r"refused \(401\)"):
        await lock.get()
    await trio.sleep(FORBIDDEN_GRACE_SECONDS)
    with pytest.raises(UnauthorizedError):
        await lock.get()
    api.heal()
    await lock.get()


async def test_a_401_before_any_success_is_final_at_once(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    """A mistyped or revoked token at start: the client read the credentials again and
    retried before raising; no grace (it would only delay the error by 15 s)."""
    api.fail_next(FOREVER, status=401)
    started = trio.current_time()
    with pytest.raises(UnauthorizedError, match="The credentials were refused"):
        await lock.get()
    assert trio.current_time() == started


async def test_403_on_patch_after_it_worked_is_retried_not_a_switch_to_put(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    obs = await lock.update(rec("me", 1), await lock.create(rec("me")))
    api.fail_next(2, verb="patch", status=403)
    for second in (2, 3):
        with pytest.raises(te.LockError, match="after it had worked") as caught:
            await lock.update(rec("me", second), obs)
        assert type(caught.value) is te.LockError
        await trio.sleep(2)
    obs = await lock.update(rec("me", 4), obs)
    assert obs.holder == "me"
    assert [(r.verb, r.status) for r in api.requests[1:]] == [
        ("patch", 200),
        ("patch", 403),
        ("patch", 403),
        ("patch", 200),
    ]


async def test_patch_refused_past_the_window_after_it_worked_falls_back_to_put(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock, resource: str
) -> None:
    """RBAC changed for good (patch removed, update kept): writing with PUT works as well."""
    obs = await lock.update(rec("me", 1), await lock.create(rec("me")))
    api.verbs = {resource: frozenset(ELECTION_VERBS)}
    with pytest.raises(te.LockError):
        await lock.update(rec("me", 2), obs)
    await trio.sleep(FORBIDDEN_GRACE_SECONDS)
    obs = await lock.update(rec("me", 3), obs)
    assert obs.holder == "me"
    assert [(r.verb, r.status) for r in api.requests[-2:]] == [("patch", 403), ("update", 200)]


async def test_watch_403_after_it_worked_is_retried_not_unavailable(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    first = await lock.create(rec("a"))
    await watch_once(api, lock, first)
    api.fail_next(FOREVER, verb="watch", status=403)
    for _ in range(3):  # 0, 5, 10 s: inside the grace window
        with pytest.raises(te.LockError, match="after it had worked") as caught:
            await watch_until_closed(lock, first)
        assert not isinstance(caught.value, te.WatchUnavailable)
        await trio.sleep(5)
    with pytest.raises(te.WatchUnavailable):  # 15 s: refused for good; the engine polls
        await watch_until_closed(lock, first)
    api.heal()
    await watch_once(api, lock, first)


# ---------------------------------------------------------------- the grace window


async def test_403_streak_shorter_than_the_window_is_retried(
    autojump_clock: trio.testing.MockClock,
    api: FakeKubeApi,
    lock: KubeLock,
    resource: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fresh handle meets an apiserver that has just started: every verb refused."""
    caplog.set_level(logging.INFO, logger="trio_election")
    api.fail_next(FOREVER, status=403)
    with pytest.raises(te.LockError, match="retried for up to 15 s"):
        await lock.get()
    await trio.sleep(FORBIDDEN_GRACE_SECONDS - 1)
    with pytest.raises(te.LockError):
        await lock.get()
    with pytest.raises(te.LockError):
        await lock.create(rec("me"))
    with pytest.raises(te.LockError) as caught:
        await watch_until_closed(lock, te.Observation(exists=False, record=None, version=""))
    assert type(caught.value) is te.LockError  # not WatchUnavailable: the engine watches again
    api.heal()
    obs = await lock.create(rec("me"))
    obs = await lock.update(rec("me", 1), obs)
    assert [(r.verb, r.status) for r in api.requests[-2:]] == [("create", 201), ("patch", 200)]
    await watch_once(api, lock, obs)
    [warned] = messages(caplog, "403 on get")
    assert warned.levelno == logging.WARNING
    assert (
        "it will be retried for up to 15 s in case the API server has just started; grant get "
        f"on {resource} if this persists"
    ) in warned.getMessage()
    assert len(messages(caplog, "403 on create")) == 1
    assert not messages(caplog, "not allowed to patch")


async def test_403_streak_longer_than_the_window_is_fatal(
    autojump_clock: trio.testing.MockClock,
    api: FakeKubeApi,
    resource: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with api.client(verbs={resource: {"create"}}, user="no-get") as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        started = trio.current_time()
        while True:
            try:
                await lock.get()
            except te.LockError:
                await trio.sleep(2)
            except ForbiddenError as exc:
                refused = exc
                break
    assert trio.current_time() - started == FORBIDDEN_GRACE_SECONDS + 1  # 0, 2, ... 16
    assert not isinstance(refused, te.LockError)
    assert f'User "no-get" cannot get resource "{resource}"' in str(refused)
    assert 'Grant the "get" verb' in str(refused)
    assert len(messages(caplog, "403 on get")) == 1  # one warning, not one per attempt


async def test_watch_refused_past_the_window_is_unavailable(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, resource: str
) -> None:
    async with api.client(verbs={resource: {"get", "create", "update"}}) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        first = await lock.create(rec("a"))
        with pytest.raises(te.LockError) as caught:
            await watch_until_closed(lock, first)
        assert type(caught.value) is te.LockError
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(te.WatchUnavailable, match=f'cannot watch resource "{resource}"'):
            await watch_until_closed(lock, first)


async def test_watch_never_allowed_is_unavailable_when_tried_again_after_polling(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, resource: str
) -> None:
    """A follower whose first watches are refused polls for a while (longer than the quiet
    gap that ends other verbs' streaks) before it watches again: a watch that has never been
    allowed is then a missing permission, not a new moment of warm-up."""
    async with api.client(verbs={resource: {"get", "create", "update"}}) as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        first = await lock.create(rec("a"))
        for _ in range(WATCH_FAILURES_BEFORE_POLLING):
            with pytest.raises(te.LockError) as caught:
                await watch_until_closed(lock, first)
            assert type(caught.value) is te.LockError
            await trio.sleep(2)
        await trio.sleep(POLLS_BEFORE_WATCHING_AGAIN * 2 * (1 + JITTER_FACTOR))  # the longest
        assert trio.current_time() > QUIET_GAP_WINDOWS * FORBIDDEN_GRACE_SECONDS
        with pytest.raises(te.WatchUnavailable, match=f'cannot watch resource "{resource}"'):
            await watch_until_closed(lock, first)


async def test_a_candidate_that_may_not_watch_is_told_once_and_polls(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    api = FakeKubeApi(verbs={"leases": ELECTION_VERBS})
    history = History()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(campaign, api, "a", "leases/default/my-app", history)
        await trio.sleep(400)  # at least three rounds of 30 polls
        nursery.cancel_scope.cancel()
    assert len(messages(caplog, "403 on watch")) == 1  # not one per round of polls
    [cannot] = [r for r in messages(caplog, "cannot watch (") if r.levelno == logging.WARNING]
    assert "trying to watch again after 30 polls" in cannot.getMessage()
    watches = api.filter("watch")
    assert all(r.status == 403 for r in watches)
    later = [r for r in watches if r.at >= FORBIDDEN_GRACE_SECONDS]
    assert 2 <= len(later) <= 400 // (POLLS_BEFORE_WATCHING_AGAIN * 2)  # one per round


# ---------------------------------------------------------------- PUT instead of PATCH


async def test_patch_is_tried_again_after_the_fallback_to_put(
    autojump_clock: trio.testing.MockClock, resource: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    api = FakeKubeApi(verbs={resource: ELECTION_VERBS})
    async with api.client() as kube:
        lock = LOCK_TYPES[resource]("default", "my-app", kube)
        obs = await lock.create(rec("me"))
        second = 0

        async def write() -> list[tuple[str, int]]:
            nonlocal obs, second
            second += 1
            api.clear_requests()
            obs = await lock.update(rec("me", second), obs)
            return [(r.verb, r.status) for r in api.requests if r.verb != "get"]

        for _ in range(PUT_AFTER_REFUSALS):  # at once, no window; each write goes through
            assert await write() == [("patch", 403), ("update", 200)]
        await trio.sleep(PATCH_RETRY_SECONDS - 1)
        assert await write() == [("update", 200)]
        await trio.sleep(1)
        assert await write() == [("patch", 403), ("update", 200)]  # tried again: still refused
        api.verbs = {resource: ALL_VERBS}  # RBAC fixed
        assert await write() == [("update", 200)]
        await trio.sleep(PATCH_RETRY_SECONDS)
        assert await write() == [("patch", 200)]
        assert await write() == [("patch", 200)]
    assert len(messages(caplog, "not allowed to patch")) == 1  # at INFO; again at DEBUG
    assert len(messages(caplog, "patch is allowed now")) == 1


# ---------------------------------------------------------------- MultiLock


async def test_multilock_through_a_moment_of_403(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    assert lock.client is not None
    multi = MultiLock(
        EndpointsLock("default", "my-app", lock.client), LeaseLock("default", "my-app", lock.client)
    )
    api.fail_next(FOREVER, status=403)
    with pytest.raises(te.LockError):
        await multi.get()
    with pytest.raises(te.LockError):
        await multi.create(rec("me"))
    await trio.sleep(3)
    api.heal()
    obs = await multi.update(rec("me", 1), await multi.create(rec("me")))
    assert (await multi.get()).holder == "me"
    api.fail_next(FOREVER, status=403)  # a restart: both objects' verbs have worked
    with pytest.raises(te.LockError, match="after it had worked"):
        await multi.update(rec("me", 2), obs)
    await trio.sleep(FORBIDDEN_GRACE_SECONDS * 2)
    with pytest.raises(te.LockError, match="after it had worked"):
        await multi.get()
    api.heal()
    obs = await multi.update(rec("me", 3), obs)
    assert obs.holder == "me"
    assert api.count("update") == 0  # PATCH throughout


async def test_multilock_without_create_on_the_lease(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    assert lock.client is not None
    async with api.client(verbs={"endpoints": ALL_VERBS, "leases": {"get"}}) as kube:
        multi = MultiLock(EndpointsLock("default", "my-app", kube), LeaseLock("default", "x", kube))
        with pytest.raises(te.LockError, match='cannot create resource "leases"'):
            await multi.create(rec("me"))
        await trio.sleep(FORBIDDEN_GRACE_SECONDS)
        with pytest.raises(ForbiddenError, match='cannot create resource "leases"'):
            await multi.create(rec("me"))


# ---------------------------------------------------------------- through the engine


async def campaign(api: FakeKubeApi, identity: str, lock: str, history: History) -> None:
    async with (
        api.client(user=identity) as client,
        te.open_election(
            lock, identity=identity, client=client, clock=LoopClock(wall=virtual_wall)
        ) as election,
        election.leading(),
    ):
        with history.leading(identity):
            await trio.sleep_forever()


LOCKS = ["leases/default/my-app", "endpoints/default/my-app", "configmaps/default/my-app"]


@pytest.mark.parametrize("spec", LOCKS)
async def test_candidates_started_while_the_apiserver_refuses(
    autojump_clock: trio.testing.MockClock, spec: str
) -> None:
    api = FakeKubeApi()
    history = History()
    api.fail_next(FOREVER, status=403)
    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(campaign, api, name, spec, history)
        await trio.sleep(5)
        assert not history.closed(trio.current_time())  # nobody could lead yet
        api.heal()
        await trio.sleep(60)
        assert len(history.closed(trio.current_time())) == 1
        assert api.open_watches == 3  # all watch (not poll), the leader too
        nursery.cancel_scope.cancel()
    assert api.count("update") == 0  # the leader renews with PATCH
    assert api.count("patch") >= 25


@pytest.mark.parametrize("spec", LOCKS)
async def test_an_apiserver_restart_costs_no_leadership(
    autojump_clock: trio.testing.MockClock, spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeKubeApi()
    history = History()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(campaign, api, "a", spec, history)
        await trio.sleep(1)
        for name in ("b", "c"):
            nursery.start_soon(campaign, api, name, spec, history)
        await trio.sleep(30)
        assert api.open_watches == 3
        api.break_watches()  # the apiserver restarts, and refuses for a few seconds
        api.fail_next(FOREVER, status=403)
        await trio.sleep(3)
        api.heal()
        await trio.sleep(300)
        assert api.open_watches == 3  # watching again, not polling for good
        nursery.cancel_scope.cancel()
    [term] = history.closed()
    assert term.identity == "a"  # one term, never lost
    assert api.count("update") == 0  # still PATCH
    # every verb had worked before the restart: no 403 was taken for a missing permission
    assert messages(caplog, "which has worked before")
    assert not messages(caplog, "retried for up to")


async def test_403_on_patch_and_put_alike_is_warm_up_not_a_switch_to_put(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new leader whose first renew meets an apiserver still filling its RBAC caches:
    patch and PUT are both refused, so nothing says PUT is the verb to use."""
    api = FakeKubeApi(verbs={"leases": ALL_VERBS})
    async with api.client() as kube:
        lock = LeaseLock("default", "my-app", kube)
        obs = await lock.create(rec("me"))  # patch has not worked yet
        api.verbs = {"leases": frozenset()}  # everything refused for a moment
        api.clear_requests()
        with pytest.raises(te.LockError):
            await lock.update(rec("me", 1), obs)
        assert [(r.verb, r.status) for r in api.requests if r.verb != "get"] == [
            ("patch", 403),
            ("update", 403),
        ]
        api.verbs = {"leases": ALL_VERBS}
        api.clear_requests()
        await lock.update(rec("me", 2), obs)
        assert [(r.verb, r.status) for r in api.requests] == [("patch", 200)]


async def test_refusals_spaced_wider_than_the_window_still_become_fatal(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    """A follower polling slowly (long retry periods) must still see a missing right."""
    api.fail_next(FOREVER, verb="get", status=403)
    with pytest.raises(te.LockError):
        await lock.get()
    await trio.sleep(1.5 * FORBIDDEN_GRACE_SECONDS)
    with pytest.raises(ForbiddenError):
        await lock.get()


async def test_an_old_refusal_does_not_make_a_new_one_fatal(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    api.fail_next(1, verb="get", status=403)
    with pytest.raises(te.LockError):
        await lock.get()
    await trio.sleep(5 * FORBIDDEN_GRACE_SECONDS)  # the verb was not tried meanwhile
    api.fail_next(1, verb="get", status=403)
    with pytest.raises(te.LockError):  # a new streak: transient again
        await lock.get()


async def test_one_refused_patch_is_no_reason_to_switch_to_put(
    autojump_clock: trio.testing.MockClock, api: FakeKubeApi, lock: KubeLock
) -> None:
    """A new RoleBinding can let update through a moment before patch."""
    obs = await lock.create(rec("me"))  # patch has never worked through this handle
    api.fail_next(1, verb="patch", status=403)
    api.clear_requests()
    obs = await lock.update(rec("me", 1), obs)
    assert [(r.verb, r.status) for r in api.requests if r.verb != "get"] == [
        ("patch", 403),
        ("update", 200),
    ]
    api.clear_requests()
    await lock.update(rec("me", 2), obs)
    assert [(r.verb, r.status) for r in api.requests] == [("patch", 200)]


async def lead_terms(api: FakeKubeApi, identity: str, lock: str, history: History) -> None:
    """One candidate that leads term after term: a lost term is followed by a campaign."""
    async with (
        api.client(user=identity) as client,
        te.open_election(
            lock, identity=identity, client=client, clock=LoopClock(wall=virtual_wall)
        ) as election,
    ):
        while True:
            with contextlib.suppress(te.LeadershipLost):
                async with election.leading():
                    with history.leading(identity):
                        await trio.sleep_forever()


@pytest.mark.parametrize("spec", LOCKS)
async def test_a_leader_whose_patch_right_is_removed_writes_with_put_for_good(
    autojump_clock: trio.testing.MockClock, spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RBAC loses `patch` for good (update kept). The 403s on a patch that has worked are
    taken for an apiserver warming up for `FORBIDDEN_GRACE_SECONDS`, longer than the renew
    deadline: that term is lost. From then on the leader writes with PUT, and each try of
    patch again (every `PATCH_RETRY_SECONDS`) is refused and costs nothing: the refusal
    has lasted the window already, a gap of minutes between tries does not start it anew."""
    caplog.set_level(logging.INFO, logger="trio_election")
    resource = spec.split("/")[0]
    api = FakeKubeApi(verbs={resource: ALL_VERBS})
    history = History()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lead_terms, api, "a", spec, history)
        await trio.sleep(30)
        assert api.count("patch") > 0
        api.verbs = {resource: ALL_VERBS - {"patch"}}
        await trio.sleep(FORBIDDEN_GRACE_SECONDS + 30)
        assert len(history.intervals) <= 1  # ended: the term of the removal, at most
        assert api.requests[-1].verb == "update"  # leading again, with PUT
        lost_before = len(history.intervals)
        api.clear_requests()
        await trio.sleep(4 * PATCH_RETRY_SECONDS + 30)
        assert len(history.intervals) == lost_before  # not one term lost since
        tried = [r for r in api.requests if r.verb == "patch"]
        assert len(tried) >= 4  # patch was tried again each time, and refused
        assert all(r.status == 403 for r in tried)
        nursery.cancel_scope.cancel()
    assert len(messages(caplog, "which has worked before")) == 1  # one streak, one WARNING
