"""Every validation rule gives a ConfigError naming the value and the rule."""

from __future__ import annotations

import re

import pytest
import trio

import trio_election as te


async def started(leadership: te.Leadership) -> None:
    pass


CASES = [
    ({"lease_duration": 10.0, "renew_deadline": 10.0}, "lease_duration must be greater than renew_deadline (got lease_duration=10.0, renew_deadline=10.0)"),
    ({"renew_deadline": 2.4, "retry_period": 2.0}, "renew_deadline must be greater than retry_period * 1.2 (got renew_deadline=2.4, retry_period=2.0"),
    ({"lease_duration": 0}, "lease_duration must be greater than zero, got 0.0"),
    ({"renew_deadline": -1}, "renew_deadline must be greater than zero, got -1.0"),
    ({"retry_period": 0.0}, "retry_period must be greater than zero, got 0.0"),
    ({"lease_duration": 0.9, "renew_deadline": 0.5, "retry_period": 0.1}, "lease_duration must be at least 1 second (the record stores whole seconds), got 0.9"),
    ({"lease_duration": "15"}, "lease_duration must be a number of seconds, got '15'"),
    ({"retry_period": True}, "retry_period must be a number of seconds, got True"),
    ({"lease_duration": float("nan")}, "lease_duration must be a finite number of seconds, got nan"),
    ({"identity": ""}, "identity is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "message"), CASES)
async def test_elect_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(te.ConfigError, match=re.escape(message)):
        async with te.elect(te.MemoryLock(), **kwargs):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize(("kwargs", "message"), CASES)
def test_leader_elector_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(te.ConfigError, match=re.escape(message)):
        te.LeaderElector(
            te.ElectionConfig(
                lock=te.MemoryLock(),
                callbacks=te.LeaderCallbacks(started),
                **kwargs,  # type: ignore[arg-type]
            )
        )


def test_config_error_is_a_value_error() -> None:
    assert issubclass(te.ConfigError, ValueError)
    assert issubclass(te.ConfigError, te.ElectionError)


async def test_smallest_valid_timing_works(autojump_clock: trio.testing.MockClock) -> None:
    async with te.elect(te.MemoryLock(), lease_duration=1, renew_deadline=0.5, retry_period=0.4):
        await trio.sleep(3)


async def test_bad_lock_argument() -> None:
    with pytest.raises(
        te.ConfigError, match="lock must be a string like 'leases/<namespace>/<name>'"
    ):
        async with te.elect(42):  # type: ignore[arg-type]
            pass


async def test_default_identity_is_hostname_and_uuid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import socket

    async with te.open_election(te.MemoryLock()) as one, te.open_election(te.MemoryLock()) as two:
        assert one.identity.startswith(socket.gethostname() + "_")
        assert re.fullmatch(r".+_[0-9a-f-]{36}", one.identity)
        assert one.identity != two.identity
