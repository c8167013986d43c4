"""The request connections of one `KubeClient`: at most `REQUEST_CONNECTIONS` requests at
once, the one of the earliest deadline served first, and more connections only when
requests wait a good share of the time to their deadline (on trio's mock clock)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import httpx
import trio
import trio.testing

from trio_election._kube._client import (
    GROW_WAITING,
    MOST_REQUEST_CONNECTIONS,
    REQUEST_CONNECTIONS,
    _Lender,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def _lender() -> tuple[_Lender, list[httpx.AsyncBaseTransport]]:
    made: list[httpx.AsyncBaseTransport] = []

    def make() -> httpx.AsyncBaseTransport:
        made.append(httpx.MockTransport(lambda request: httpx.Response(200)))
        return made[-1]

    return _Lender(make, REQUEST_CONNECTIONS, MOST_REQUEST_CONNECTIONS), made


def run(main: Callable[[], Awaitable[None]], *, time_passes: bool = True) -> None:
    """`main` on a mock clock, which jumps to the next deadline whenever every task
    waits (or stands still)."""
    clock = trio.testing.MockClock(autojump_threshold=0 if time_passes else math.inf)
    trio.run(main, clock=clock)


def test_the_earliest_deadline_has_the_next_turn() -> None:
    served: list[str] = []

    async def main() -> None:
        lender, made = _lender()
        held = [await lender.take() for _ in range(REQUEST_CONNECTIONS)]

        async def request(name: str, within: float) -> None:
            with trio.move_on_after(within):
                transport = await lender.take()
                served.append(name)
                lender.give_back(transport)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request, "read of a starting election", 10.0)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(request, "renewal", 8.0)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(request, "no deadline", math.inf)
            await trio.testing.wait_all_tasks_blocked()
            # one turn at a time (trio runs the tasks woken together in any order): each
            # request served hands it on as it gives its connection back
            lender.give_back(held.pop())
            await trio.testing.wait_all_tasks_blocked()
            lender.give_back(held.pop())
        assert len(made) == REQUEST_CONNECTIONS  # the burst waited: no connection more

    run(main, time_passes=False)  # no request waits long enough to open a connection
    assert served == ["renewal", "read of a starting election", "no deadline"]


def test_a_burst_cleared_in_time_opens_no_connection() -> None:
    async def main() -> None:
        lender, made = _lender()

        async def request() -> None:
            with trio.fail_after(10):
                transport = await lender.take()
                await trio.sleep(0.01)  # the apiserver's answer
                lender.give_back(transport)

        async with trio.open_nursery() as nursery:
            for _ in range(100):  # 0.5 s of work for 2 connections
                nursery.start_soon(request)
        assert len(made) == REQUEST_CONNECTIONS

    run(main)


def test_requests_that_keep_waiting_double_the_connections() -> None:
    async def main() -> None:
        lender, made = _lender()
        held = [await lender.take() for _ in range(REQUEST_CONNECTIONS)]
        started = trio.current_time()
        got_at: list[float] = []

        async def request() -> None:
            with trio.fail_after(8):
                transport = await lender.take()
                got_at.append(trio.current_time() - started)
                del transport  # held until cancelled
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(request)
            await trio.testing.wait_all_tasks_blocked()
            while len(got_at) < 2:  # noqa: ASYNC110 - the mock clock jumps
                await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
        del held
        # after a quarter of the 8 s each had, the limit doubled: two of them got one
        assert got_at == [8 * GROW_WAITING] * 2
        assert len(made) == 2 * REQUEST_CONNECTIONS

    run(main)
