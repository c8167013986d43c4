"""The API misbehaving in the middle of a term, over `FakeKubeApi` in virtual time.

Timing: the defaults (lease 15 s, renew deadline 10 s, retry 2 s). The leader `a` takes
the lock at 0 and renews at 2, 4, 6, ...; the follower `b` watches. Each case ends in a
clean step-down (the term lost with its reason, a follower taking over no sooner than the
rules allow) or a clear error naming the problem and the fix, and never two leaders, except
the one documented case (a deleted lock and a fresh candidate), whose overlap is measured.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
import trio.testing

import trio_election as te
from trio_election.kube import KubeClient, KubeConfig, UnauthorizedError
from trio_election.testing import FakeKubeApi

from ._fleet import LEASE, NAME, RENEW, RETRY, Fleet

if TYPE_CHECKING:
    from pathlib import Path

MAX_DELAY = 0.1 * RETRY  # the random delay at expiry
NO_WATCH = {"leases": {"get", "list", "create", "update", "patch"}}


async def two_candidates(fleet: Fleet, nursery: trio.Nursery, **kw: object) -> None:
    """`a` leads from 0; `b` joins at 1 and follows."""
    fleet.start(nursery, "a", **kw)  # type: ignore[arg-type]
    await trio.sleep(1)
    fleet.start(nursery, "b")
    await trio.sleep(3.5)  # t = 4.5: a renewed at 2 and 4


def intervals(fleet: Fleet) -> list[tuple[str, float, float]]:
    return [(iv.identity, iv.start, iv.end) for iv in fleet.history.closed()]


async def test_lock_deleted_mid_term(autojump_clock: trio.testing.MockClock) -> None:
    """The leader sees the deletion in its watch and stops at once; the candidates, which
    had seen it hold the lock, wait until that lease would have run out, then one of them
    creates the lock again with the next term number."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.delete_object("leases", NAME)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (a, after) = fleet.history.closed()
    assert (a.identity, a.end) == ("a", 4.5)
    first_term = fleet.candidates[0].terms[0]
    assert "deleted" in first_term.reason
    assert 4 + LEASE <= after.start <= 4 + LEASE + MAX_DELAY
    (second_term,) = [t for c in fleet.candidates for t in c.terms if t is not first_term]
    assert second_term.term == first_term.term + 1


async def test_lock_deleted_mid_term_under_a_polling_leader_and_a_fresh_candidate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The documented overlap: a candidate that starts after the deletion has never seen a
    holder and creates the lock at once; a leader that polls (it may not watch) finds out
    at its next renew. Two leaders for at most a retry period plus two requests."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        fleet.start(nursery, "a", verbs=NO_WATCH)
        await trio.sleep(4.5)
        api.delete_object("leases", NAME)
        fleet.start(nursery, "fresh")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    ((first, second),) = fleet.history.overlaps()
    assert (first.identity, second.identity) == ("a", "fresh")
    overlap = first.end - second.start
    assert 0 < overlap <= RETRY  # its renew at 6 at the latest meets the new lock
    assert "fresh holds the lock" in fleet.candidates[0].terms[0].reason


async def test_another_process_claims_our_identity(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A second process given the same identity finds a record naming it that it did not
    write: it waits it out with a warning instead of taking it (client-go would take it).
    While the first process renews, it never leads; after the first crashes, it takes over
    a lease after the last renew it saw."""
    caplog.set_level(logging.WARNING, "trio_election")
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        first = fleet.start(nursery, "same", user="first", process="first")
        await trio.sleep(5)
        fleet.start(nursery, "same", user="second", process="second")
        await trio.sleep(60)
        assert [iv.identity for iv in fleet.history.closed()] == ["first"]
        api.partition("first")  # the first process crashes: no renew, no release
        first.scope.cancel()
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (_, second) = fleet.history.closed()
    assert second.identity == "second"
    assert 64 + LEASE <= second.start <= 64 + LEASE + MAX_DELAY  # a's last renew: 64
    warned = [r.getMessage() for r in caplog.records if "unique identity" in r.getMessage()]
    assert len(warned) == 1
    assert "'same'" in warned[0]


async def test_401_mid_term_with_a_static_token_is_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The token was revoked (rotated away). A 401 may heal (a rotated token is read
    again), so it is retried: the term ends at the renew deadline. As a follower it goes
    on with the watch it had opened; when it next has to ask (the server ends a watch
    after 300 s), the refusals outlast the grace window (15 s) and the error comes out,
    saying the credentials were refused and what to check."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        a = fleet.candidates[0]
        api.revoke(a.token)
        await trio.sleep(400)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    assert "401" in a.terms[0].reason
    assert isinstance(a.error, UnauthorizedError)
    assert "check the token, certificate or exec plugin" in str(a.error)
    assert a.token not in str(a.error)
    assert second.identity == "b"
    assert 4 + LEASE <= second.start <= 4 + LEASE + MAX_DELAY


async def test_401_mid_term_with_a_rotated_token_file_costs_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A bound service-account token rotates: the old one is refused, the file holds the
    new one; the client re-reads it on the 401 and the term goes on."""
    api = FakeKubeApi()
    token_file = tmp_path / "token"
    old = api.token("a")
    token_file.write_text(old)
    config = KubeConfig(
        server="https://fake-kube-api.invalid", token_file=token_file, insecure_skip_tls_verify=True
    )
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        fleet.start(nursery, "a", client=KubeClient(config, transport=api.transport))
        await trio.sleep(4.5)
        token_file.write_text(api.token("a"))
        api.revoke(old)
        await trio.sleep(60)
        assert fleet.holder() == "a"
        nursery.cancel_scope.cancel()
    assert [iv.identity for iv in fleet.history.closed()] == ["a"]
    assert not fleet.candidates[0].terms[0].lost
    assert any(r.status == 401 for r in api.requests)


async def test_403_mid_term_rights_removed_for_good(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The leader's Role is removed: its renewals are refused. A 403 on a verb that has
    worked may be an apiserver filling its caches, so it is retried, and the term ends at
    the renew deadline; the warning says what to restore."""
    caplog.set_level(logging.WARNING, "trio_election")
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.fail_next(10**9, user="a", status=403)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    reason = fleet.candidates[0].terms[0].reason
    assert "renew deadline" in reason
    assert "403" in reason
    assert 4 + LEASE <= second.start <= 4 + LEASE + MAX_DELAY
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "if the Role or RoleBinding was removed, restore it" in warned


async def test_429_for_a_moment_costs_no_leadership(autojump_clock: trio.testing.MockClock) -> None:
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.fail_next(3, user="a", status=429, retry_after=1)
        await trio.sleep(30)
        assert fleet.holder() == "a"
        nursery.cancel_scope.cancel()
    assert [iv.identity for iv in fleet.history.closed()] == ["a"]
    assert not fleet.candidates[0].terms[0].lost
    assert sum(r.status == 429 for r in api.requests) == 3


async def test_429_retry_after_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    api = FakeKubeApi()
    api.fail_next(1, status=429, retry_after=10)
    async with (
        api.client(user="b") as client,
        te.open_election(
            te.LeaseLock("default", NAME, client), identity="b", stop_on_sigterm=False
        ),
    ):
        pass
    first, second, *_ = api.requests
    assert first.status == 429
    assert second.at - first.at >= 10


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_a_run_of_5xx_shorter_than_the_renew_deadline_costs_nothing(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.fail_next(4, user="a", status=status)  # the renewals at 6 and 8 fail
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [iv.identity for iv in fleet.history.closed()] == ["a"]
    assert not fleet.candidates[0].terms[0].lost


async def test_a_run_of_5xx_longer_than_the_renew_deadline_is_a_clean_step_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.fail_next(10**9, user="a", status=503)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    assert "503" in fleet.candidates[0].terms[0].reason
    assert fleet.candidates[0].error is None  # it is retried, never fatal
    assert 4 + LEASE <= second.start <= 4 + LEASE + MAX_DELAY


async def test_an_apiserver_slower_than_the_renew_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every answer takes 12 s, more than the 10 s renew deadline: the leader cannot renew
    and steps down at its deadline; nobody can take the lock while it is so slow (every
    write is given up before it lands); once it is fast again, a leader emerges within a
    lease."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.latency = 12.0
        await trio.sleep(60)
        assert [iv.identity for iv in fleet.history.closed()] == ["a"]
        healed = trio.current_time()
        api.latency = 0.0
        await trio.sleep(LEASE + 3 * RETRY + 12)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    assert "timed out" in first_reason(fleet) or "in time" in first_reason(fleet)
    assert second.start - healed <= LEASE + 3 * RETRY + 12


def first_reason(fleet: Fleet) -> str:
    return fleet.candidates[0].terms[0].reason


async def test_a_renew_the_apiserver_applies_late_is_refused_by_its_precondition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The renew sent at 6 reaches the server only at 18; the leader heard nothing, its
    term ended at the renew deadline (14), it released the lock and the lock moved on.
    The late write carries the version it was based on, so the server refuses it (409)."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.stall_next(apply_after=12, user="a", verb="patch")
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    assert "timed out" in first_reason(fleet)
    assert second.start >= 4 + RENEW
    (late,) = [r for r in api.requests if r.user == "a" and r.at == 6 and r.verb == "patch"]
    assert late.status == 409


async def test_a_follower_whose_watch_lags_a_lease_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The follower's watch delivers each change 20 s late, so by its view the lease runs
    out while the leader renews. Its write is conditional on the version it saw: refused
    (409), it reads the lock, sees the renewals and waits again. Never two leaders."""
    api = FakeKubeApi()
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        await two_candidates(fleet, nursery)
        api.lag_watches("b", 20)
        await trio.sleep(120)
        assert fleet.holder() == "a"
        nursery.cancel_scope.cancel()
    assert [iv.identity for iv in fleet.history.closed()] == ["a"]
    refused = [r for r in api.requests if r.user == "b" and r.status == 409]
    assert refused  # it tried, and the precondition stopped it


class HtmlProxy(httpx.AsyncBaseTransport):
    """A proxy in front of the API that, while `broken`, answers 200 with a web page."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.broken = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.broken:
            return httpx.Response(200, text="<html><body>Please log in</body></html>")
        return await self.inner.handle_async_request(request)


async def test_a_proxy_answering_web_pages_is_a_clean_step_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = FakeKubeApi()
    proxy = HtmlProxy(api.transport)
    config = KubeConfig(
        server="https://fake-kube-api.invalid", token=api.token("a"), insecure_skip_tls_verify=True
    )
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        fleet.start(nursery, "a", client=KubeClient(config, transport=proxy))
        await trio.sleep(1)
        fleet.start(nursery, "b")
        await trio.sleep(3.5)
        proxy.broken = True
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (first, second) = fleet.history.closed()
    assert (first.identity, first.end) == ("a", 4 + RENEW)
    assert "not JSON" in first_reason(fleet)
    assert second.identity == "b"
    assert fleet.candidates[0].error is None
    assert not math.isnan(second.start)
