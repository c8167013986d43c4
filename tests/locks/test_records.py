"""The leader record on the wire: exact strings as client-go writes them, lenient reading."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from trio_election import LeaderRecord
from trio_election._kube_locks._records import (
    annotation_from_record,
    format_micro_time,
    format_time,
    lease_spec_from_record,
    parse_time,
    record_from_annotation,
    record_from_lease_spec,
)

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 10, 5, 2, 654321, tzinfo=UTC)
WHOLE = dt.datetime(2024, 5, 1, 10, 5, 2, tzinfo=UTC)


def test_micro_time_has_exactly_six_digits() -> None:
    assert format_micro_time(T0) == "2024-05-01T10:05:02.654321Z"
    assert format_micro_time(WHOLE) == "2024-05-01T10:05:02.000000Z"  # isoformat() drops these
    assert format_micro_time(T0.replace(microsecond=1000)) == "2024-05-01T10:05:02.001000Z"


def test_times_are_written_in_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert format_micro_time(T0.astimezone(plus_two)) == "2024-05-01T10:05:02.654321Z"
    assert format_time(T0.astimezone(plus_two)) == "2024-05-01T10:05:02Z"
    assert format_time(dt.datetime(2024, 5, 1, 10, 5, 2)) == "2024-05-01T10:05:02Z"  # naive: UTC


def test_annotation_time_is_truncated_to_seconds() -> None:
    assert format_time(T0) == "2024-05-01T10:05:02Z"
    assert format_time(T0.replace(microsecond=999999)) == "2024-05-01T10:05:02Z"


def test_annotation_is_byte_for_byte_client_go() -> None:
    # the real value seen in kubernetes/kubernetes#86286
    real = (
        '{"holderIdentity":"kube-4_7a53b8ee-b00b-4a82-acd2-777cfc725f43",'
        '"leaseDurationSeconds":15,"acquireTime":"2019-12-11T22:37:03Z",'
        '"renewTime":"2019-12-16T03:17:14Z","leaderTransitions":23}'
    )
    record = record_from_annotation(real)
    assert record == LeaderRecord(
        holder_identity="kube-4_7a53b8ee-b00b-4a82-acd2-777cfc725f43",
        lease_duration_seconds=15,
        acquire_time=dt.datetime(2019, 12, 11, 22, 37, 3, tzinfo=UTC),
        renew_time=dt.datetime(2019, 12, 16, 3, 17, 14, tzinfo=UTC),
        leader_transitions=23,
    )
    assert record is not None
    assert annotation_from_record(record) == real


def test_annotation_of_a_released_record_and_null_times() -> None:
    assert annotation_from_record(LeaderRecord()) == (
        '{"holderIdentity":"","leaseDurationSeconds":0,"acquireTime":null,'
        '"renewTime":null,"leaderTransitions":0}'
    )
    assert record_from_annotation(annotation_from_record(LeaderRecord())) == LeaderRecord()


def test_annotation_escapes_like_go() -> None:
    text = annotation_from_record(LeaderRecord(holder_identity="a<b>&c\u2028é"))
    assert '"holderIdentity":"a\\u003cb\\u003e\\u0026c\\u2028é"' in text
    assert json.loads(text)["holderIdentity"] == "a<b>&c\u2028é"


def test_lease_spec_fields() -> None:
    record = LeaderRecord("me", 15, WHOLE, T0, 3)
    assert lease_spec_from_record(record) == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-05-01T10:05:02.000000Z",
        "renewTime": "2024-05-01T10:05:02.654321Z",
        "leaseTransitions": 3,
    }
    assert record_from_lease_spec(lease_spec_from_record(record)) == record


def test_lease_spec_leaves_out_a_duration_the_apiserver_would_refuse() -> None:
    spec = lease_spec_from_record(LeaderRecord(holder_identity="", lease_duration_seconds=0))
    assert spec["leaseDurationSeconds"] is None
    assert spec["acquireTime"] is None
    assert spec["renewTime"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:05:02.654321Z", T0),
        ("2024-05-01T10:05:02Z", WHOLE),
        ("2024-05-01T10:05:02.654Z", T0.replace(microsecond=654000)),
        ("2024-05-01T10:05:02.654321999Z", T0),  # nanoseconds are cut
        ("2024-05-01T12:05:02.654321+02:00", T0),
        ("2024-05-01t10:05:02z", WHOLE),
        ("2024-05-01 10:05:02", WHOLE),  # no offset: UTC
        ("1714557902", WHOLE),  # epoch seconds as a string (the kubernetes Python client)
        ("1714557902.654321", T0),
        (1714557902, WHOLE),
        (1714557902.654321, T0),
    ],
)
def test_times_are_read_leniently(text: object, expected: dt.datetime) -> None:
    parsed = parse_time(text)
    assert parsed is not None
    assert parsed.tzinfo is not None
    assert abs(parsed - expected) < dt.timedelta(microseconds=2)


@pytest.mark.parametrize(
    "garbage", [None, "", "yesterday", "2024-13-01T00:00:00Z", [], {}, True, "nan", "1e400"]
)
def test_unreadable_times_are_none(garbage: object) -> None:
    assert parse_time(garbage) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15, 15),
        ("15", 15),
        (" 15 ", 15),
        (15.0, 15),
        ("15.0", 15),
        (15.5, 0),
        (0, 0),
        (-3, 0),
        ("-3", 0),
        (None, 0),
        ("soon", 0),
        (True, 0),
        ([15], 0),
    ],
)
def test_duration_is_a_positive_whole_number_or_zero(value: object, expected: int) -> None:
    record = record_from_annotation(
        json.dumps({"holderIdentity": "x", "leaseDurationSeconds": value})
    )
    assert record is not None
    assert record.lease_duration_seconds == expected
    spec = record_from_lease_spec({"holderIdentity": "x", "leaseDurationSeconds": value})
    assert spec is not None
    assert spec.lease_duration_seconds == expected


def test_kubernetes_python_client_record() -> None:
    # what kubernetes.leaderelection's ConfigMapLock writes: numeric strings, epoch times
    text = json.dumps(
        {
            "holderIdentity": "py-1",
            "leaseDurationSeconds": "17",
            "acquireTime": "1714557902.654321",
            "renewTime": "1714557903.0",
        }
    )
    record = record_from_annotation(text)
    assert record is not None
    assert record.holder_identity == "py-1"
    assert record.lease_duration_seconds == 17
    assert record.renew_time == dt.datetime(2024, 5, 1, 10, 5, 3, tzinfo=UTC)
    assert record.leader_transitions == 0


@pytest.mark.parametrize("transitions", ["4", 4, 4.0])
def test_transitions_as_numbers_or_strings(transitions: object) -> None:
    record = record_from_annotation(
        json.dumps({"holderIdentity": "x", "leaderTransitions": transitions})
    )
    assert record is not None
    assert record.leader_transitions == 4


@pytest.mark.parametrize(
    "value", ["", "not json", "[1, 2]", '"a string"', "null", "42", '{"holderIdentity": 7}', 7]
)
def test_an_annotation_that_is_not_a_record_is_unreadable(value: object) -> None:
    assert record_from_annotation(value) is None


def test_no_annotation_or_no_spec_is_free() -> None:
    assert record_from_annotation(None) == LeaderRecord()
    assert record_from_lease_spec(None) == LeaderRecord()
    assert record_from_lease_spec({}) == LeaderRecord()
    assert record_from_annotation("{}") == LeaderRecord()


def test_a_broken_spec_is_unreadable() -> None:
    assert record_from_lease_spec("spec") is None
    assert record_from_lease_spec({"holderIdentity": ["a"]}) is None


def test_garbage_fields_fall_back_without_losing_the_holder() -> None:
    record = record_from_annotation(
        json.dumps(
            {
                "holderIdentity": "me",
                "leaseDurationSeconds": "x",
                "acquireTime": "never",
                "renewTime": 12,
                "leaderTransitions": "many",
            }
        )
    )
    assert record is not None
    assert record.holder_identity == "me"
    assert record.lease_duration_seconds == 0
    assert record.acquire_time is None
    assert record.renew_time == dt.datetime(1970, 1, 1, 0, 0, 12, tzinfo=UTC)
    assert record.leader_transitions == 0
