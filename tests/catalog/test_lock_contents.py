"""Bad input in the lock object: what two candidates do when they find it.

Each case stores a record (a Lease spec, or the leader annotation of a ConfigMap) that no
well-behaved client writes, starts two watching candidates, and checks the one rule that
applies: a record that cannot be read counts as held by an unknown holder and is waited out
for our own lease duration, with one WARNING that shows it; a record with a holder and a
duration that is not a positive whole number is waited out for our lease duration; a
record without a holder is free and taken at once; times in the record never matter. In
every case exactly one candidate leads, never two at once, and the record it writes reads
back cleanly. The decoding of each field on its own is unit-tested in
`tests/locks/test_records.py`; here it is the election around it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from trio_election._core._timing import MAX_IDENTITY_LENGTH, MAX_RELEASE_DELAY
from trio_election.testing import FakeKubeApi

from ._fleet import LEASE, NO_SPEC, Fleet, put_annotation, put_lease_spec

if TYPE_CHECKING:
    from collections.abc import Callable

STAMP = "2026-01-01T00:00:00.000000Z"
MAX_DELAY = 0.2  # the random delay at expiry: at most 0.1 x retry_period


@dataclass(frozen=True)
class Case:
    """A bad record, and after how long (from the first read) it may be taken."""

    store: Callable[[FakeKubeApi], None]
    held_for: float
    unreadable: bool = False
    resource: str = "leases"


def spec(**fields: Any) -> Callable[[FakeKubeApi], None]:
    record: dict[str, Any] = {
        "holderIdentity": "someone-else",
        "leaseDurationSeconds": 15,
        "acquireTime": STAMP,
        "renewTime": STAMP,
        "leaseTransitions": 3,
    }
    record.update(fields)
    return lambda api: put_lease_spec(api, {k: v for k, v in record.items() if v is not DROP})


def raw_spec(value: object) -> Callable[[FakeKubeApi], None]:
    return lambda api: put_lease_spec(api, value)


def annotation(value: str | dict[str, Any]) -> Callable[[FakeKubeApi], None]:
    text = value if isinstance(value, str) else json.dumps(value)
    return lambda api: put_annotation(api, text)


def record(**fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "holderIdentity": "someone-else",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T00:00:00Z",
        "renewTime": "2026-01-01T00:00:00Z",
        "leaderTransitions": 3,
    }
    found.update(fields)
    return found


DROP: Any = object()
ODD = "l\u0302eader\u202e\u200d\U0001f642-\u00e9\u4e2d"  # combining, RTL override, ZWJ, emoji
LONG = "x" * 65536

CASES = {
    # a Lease's spec
    "spec-holder-is-a-number": Case(spec(holderIdentity=42), LEASE, unreadable=True),
    "spec-holder-is-an-object": Case(spec(holderIdentity={"n": 1}), LEASE, unreadable=True),
    "spec-is-a-list": Case(raw_spec([1, 2, 3]), LEASE, unreadable=True),
    "spec-is-a-string": Case(raw_spec("holder=x"), LEASE, unreadable=True),
    "no-spec-at-all": Case(raw_spec(NO_SPEC), 0.0),
    "empty-spec": Case(raw_spec({}), 0.0),
    "holder-null": Case(spec(holderIdentity=None), 0.0),
    "duration-negative": Case(spec(leaseDurationSeconds=-5), LEASE),
    "duration-zero": Case(spec(leaseDurationSeconds=0), LEASE),
    "duration-fractional": Case(spec(leaseDurationSeconds=1.5), LEASE),
    "duration-missing": Case(spec(leaseDurationSeconds=DROP), LEASE),
    "duration-numeric-string": Case(spec(leaseDurationSeconds="30"), 30.0),
    "duration-word": Case(spec(leaseDurationSeconds="soon"), LEASE),
    "duration-nan-string": Case(spec(leaseDurationSeconds="NaN"), LEASE),
    "duration-true": Case(spec(leaseDurationSeconds=True), LEASE),
    "time-without-zone": Case(spec(renewTime="2026-01-01T00:00:00"), LEASE),
    "time-far-future": Case(spec(renewTime="9999-12-31T23:59:59.999999Z"), LEASE),
    "time-far-past": Case(spec(renewTime="0001-01-01T00:00:00Z"), LEASE),
    "time-garbage": Case(spec(acquireTime="yesterday", renewTime=12.5e300), LEASE),
    "transitions-negative": Case(spec(leaseTransitions=-7), LEASE),
    "transitions-word": Case(spec(leaseTransitions="many"), LEASE),
    "holder-odd-unicode": Case(spec(holderIdentity=ODD), LEASE),
    "holder-64-KiB": Case(spec(holderIdentity=LONG), LEASE),
    # the leader annotation of a ConfigMap (the same on Endpoints)
    "annotation-not-json": Case(annotation("{garbage"), LEASE, True, "configmaps"),
    "annotation-empty": Case(annotation(""), LEASE, True, "configmaps"),
    "annotation-json-list": Case(annotation("[1, 2]"), LEASE, True, "configmaps"),
    "annotation-json-string": Case(annotation('"someone"'), LEASE, True, "configmaps"),
    "annotation-json-null": Case(annotation("null"), LEASE, True, "configmaps"),
    "annotation-empty-object": Case(annotation("{}"), 0.0, resource="configmaps"),
    "annotation-duration-string": Case(
        annotation(record(leaseDurationSeconds="20")), 20.0, resource="configmaps"
    ),
    "annotation-epoch-times": Case(
        annotation(record(acquireTime=1767225600, renewTime="1767225600.5")),
        LEASE,
        resource="configmaps",
    ),
    "annotation-holder-64-KiB": Case(
        annotation(record(holderIdentity=LONG)), LEASE, resource="configmaps"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_bad_record_is_waited_out_or_taken_never_two_leaders(
    case: Case, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trio_election")
    api = FakeKubeApi()
    case.store(api)
    fleet = Fleet(api, case.resource)
    async with trio.open_nursery() as nursery:
        for identity in ("a", "b"):
            fleet.start(nursery, identity)
        await trio.sleep(case.held_for + 5)
        holder = fleet.holder()  # what the leader wrote reads back cleanly
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    (term,) = fleet.history.closed()
    assert case.held_for <= term.start <= case.held_for + MAX_DELAY
    assert holder == term.identity
    warned = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    if case.unreadable:
        assert len(warned) == 2  # once per candidate
        assert f"{case.resource}/default/my-app" in warned[0]
        assert "waited out" in warned[0]
    else:
        assert not warned


async def test_a_lease_of_68_years_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    """The largest duration a Lease can hold (int32) is a lease like any other: nobody takes
    the lock while the record does not change (as client-go), and the moment its holder
    releases it, it is taken."""
    api = FakeKubeApi()
    spec(leaseDurationSeconds=2**31 - 1)(api)
    fleet = Fleet(api)
    async with trio.open_nursery() as nursery:
        fleet.start(nursery, "a")
        await trio.sleep(24 * 3600)
        assert not fleet.history.intervals
        assert not fleet.history.closed()
        spec(holderIdentity="", leaseDurationSeconds=1)(api)  # the holder releases
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    (term,) = fleet.history.closed()
    assert 24 * 3600 <= term.start <= 24 * 3600 + MAX_RELEASE_DELAY


ODD_ALLOWED = "l\u0302eader\U0001f642-\u00e9\u4e2d"  # combining, emoji: printable
"""`ODD` without its formatting characters (RTL override, ZWJ), which our own identity may
not hold (tests/test_misuse.py); a peer's record may, and is read (`CASES`)."""


@pytest.mark.parametrize(
    "identity", [ODD_ALLOWED, "x" * MAX_IDENTITY_LENGTH], ids=["odd-unicode", "longest"]
)
@pytest.mark.parametrize("resource", ["leases", "configmaps"])
async def test_our_own_odd_identity_round_trips(
    identity: str, resource: str, autojump_clock: trio.testing.MockClock
) -> None:
    """An identity with odd printable characters, or of the longest length allowed, is
    written and read back as itself: the other candidate sees it as the holder and waits,
    and the holder keeps its lease."""
    api = FakeKubeApi()
    fleet = Fleet(api, resource)
    async with trio.open_nursery() as nursery:
        first = fleet.start(nursery, identity, user="first")
        await trio.sleep(1)
        second = fleet.start(nursery, "second")
        await trio.sleep(60)
        assert second.election is not None
        assert second.election.leader == identity
        record = fleet.record()
        nursery.cancel_scope.cancel()
    fleet.history.assert_one_leader()
    assert [iv.identity for iv in fleet.history.closed()] == [identity]
    assert len(first.terms) == 1
    assert record is not None
    assert record.holder_identity == identity
    assert record.lease_duration_seconds == LEASE
