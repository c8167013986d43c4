"""What the library logs at steady state: a line per change of leader, nothing per renew.

In virtual time on the in-memory Kubernetes API (every layer's loggers: `trio_election`
and `trio_election.kube`). A leader and two watching followers for half an hour, through
watch streams that the server ends every few minutes, must log at INFO only the changes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import trio
import trio.testing

import trio_election as te
from trio_election.testing import LoopClock
from trio_election.testing._fake_api import FakeKubeApi

if TYPE_CHECKING:
    import pytest

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def virtual_wall() -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=trio.current_time())


async def test_steady_state_logs_nothing_but_changes_of_leader(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    api = FakeKubeApi()
    lock = "leases/default/my-app"

    async def candidate(identity: str, lead: bool) -> None:
        async with (
            api.client(user=identity) as client,
            te.open_election(
                lock,
                identity=identity,
                client=client,
                clock=LoopClock(wall=virtual_wall),
                stop_on_sigterm=False,
            ) as election,
        ):
            if lead:
                async with election.leading():
                    await trio.sleep_forever()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(candidate, "a", True)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(candidate, "b", False)
        nursery.start_soon(candidate, "c", False)
        await trio.sleep(60)
        caplog.clear()
        api.clear_requests()
        await trio.sleep(30 * 60)  # 900 renews, several watch sessions ended by the server
        nursery.cancel_scope.cancel()
    steady = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    # the cancellation at the end: a's release, then b and c see the free lock
    assert len(steady) <= 4, steady
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    watches = [r for r in api.requests if r.verb == "watch"]
    assert len(watches) >= 3 * 5  # every candidate's watch was ended and reopened
