"""The leader record on the wire, exactly as client-go writes and reads it.

Two encodings share one `LeaderRecord`:

- **Lease** (`coordination.k8s.io/v1`): fields of `spec`: ``holderIdentity``,
  ``leaseDurationSeconds``, ``acquireTime`` and ``renewTime`` (MicroTime: exactly six
  fractional digits, ``2024-05-01T10:05:02.654321Z``) and ``leaseTransitions``.
- **Annotation** (Endpoints, ConfigMap): the annotation ``control-plane.alpha.kubernetes.io/leader``
  holds compact JSON with ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime`` and
  ``renewTime`` (RFC 3339, UTC, whole seconds, or ``null``) and ``leaderTransitions``.

Writing is exact; reading is lenient: times with or without fractions, any offset, or epoch
seconds (as numbers or numeric strings, which the `kubernetes` Python client writes);
integers given as numeric strings. A duration that is missing or not a positive whole
number reads as 0 (the engine then uses its own). A holder that is not a string, or an
annotation that is not a JSON object, makes the record unreadable (`None`): a record whose
holder cannot be told must never read as free.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from typing import Any

from .._core._lock import LeaderRecord, Nomination

__all__ = [
    "LEADER_ANNOTATION",
    "NOMINEE_ANNOTATION",
    "annotation_from_record",
    "canonical_json",
    "format_micro_time",
    "format_time",
    "lease_spec_from_record",
    "nomination_from_annotation",
    "nomination_to_annotation",
    "parse_time",
    "record_from_annotation",
    "record_from_lease_spec",
]

LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
"""The annotation that holds the record on Endpoints and ConfigMap locks."""

NOMINEE_ANNOTATION = "trio-election.io/next"
"""The annotation, on every kind of lock object, that names the follower who takes the lock
at its next release: compact JSON, ``{"identity":"<follower>","term":<transitions>}``.
client-go neither reads nor removes it (it writes the Lease's spec, or its own annotation,
on the object it read)."""

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _utc(t: _dt.datetime) -> _dt.datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC)


def format_time(t: _dt.datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Go's ``metav1.Time`` (``2019-12-11T22:37:03Z``)."""
    u = _utc(t)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


def format_micro_time(t: _dt.datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits, as ``metav1.MicroTime``."""
    u = _utc(t)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def _number(value: object) -> float | None:
    """A finite number from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
        return result if math.isfinite(result) else None
    return None


def _whole(value: object) -> int | None:
    """A whole number from a JSON number or a numeric string (``15``, ``"15"``, ``15.0``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    number = _number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def parse_time(value: object) -> _dt.datetime | None:
    """Read a time leniently; None when absent or unreadable (never raises)."""
    if value is None or value == "":
        return None
    number = _number(value)
    if number is not None:
        try:
            return _dt.datetime.fromtimestamp(number, _dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    match = _TIME.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = _dt.UTC
    if sign is not None and zulu is None:
        offset = _dt.timedelta(hours=int(off_h), minutes=int(off_m))
        tz = _dt.timezone(offset if sign == "+" else -offset)
    try:
        parsed = _dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # a leap second reads as :59
            micro,
            tzinfo=tz,
        )
        return parsed.astimezone(_dt.UTC)
    except (ValueError, OverflowError):
        return None


def _duration(value: object) -> int:
    seconds = _whole(value)
    return seconds if seconds is not None and seconds > 0 else 0


def _transitions(value: object) -> int:
    count = _whole(value)
    return count if count is not None and count > 0 else 0


def _holder(value: object) -> str | None:
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def canonical_json(value: object) -> str:
    """Sorted, compact JSON: a stable text of a decoded value, to tell changes apart."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _go_json(value: object) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


# ---------------------------------------------------------------- Lease


def record_from_lease_spec(spec: object) -> LeaderRecord | None:
    """The record in a Lease's `spec`; an absent spec is free, a broken one unreadable."""
    if spec is None:
        return LeaderRecord()
    if not isinstance(spec, dict):
        return None
    fields: dict[str, Any] = spec  # pyright: ignore[reportUnknownVariableType]
    return _record_from_fields(fields, transitions_key="leaseTransitions")


def _record_from_fields(fields: dict[str, Any], *, transitions_key: str) -> LeaderRecord | None:
    """The record in a Lease spec or an annotation's JSON (they differ in one key's name)."""
    holder = _holder(fields.get("holderIdentity"))
    if holder is None:
        return None
    return LeaderRecord(
        holder_identity=holder,
        lease_duration_seconds=_duration(fields.get("leaseDurationSeconds")),
        acquire_time=parse_time(fields.get("acquireTime")),
        renew_time=parse_time(fields.get("renewTime")),
        leader_transitions=_transitions(fields.get(transitions_key)),
    )


def lease_spec_from_record(record: LeaderRecord) -> dict[str, Any]:
    """The `spec` fields that hold `record` (None means "remove" in a merge patch).

    client-go writes the same five fields; a duration that is not positive is left out,
    as the apiserver would refuse it.
    """
    return {
        "holderIdentity": record.holder_identity,
        "leaseDurationSeconds": (
            record.lease_duration_seconds if record.lease_duration_seconds > 0 else None
        ),
        "acquireTime": (
            None if record.acquire_time is None else format_micro_time(record.acquire_time)
        ),
        "renewTime": None if record.renew_time is None else format_micro_time(record.renew_time),
        "leaseTransitions": max(record.leader_transitions, 0),
    }


# ---------------------------------------------------------------- annotation


def record_from_annotation(value: object) -> LeaderRecord | None:
    """The record in the leader annotation; absent is free, anything but a JSON object is
    unreadable."""
    if value is None:
        return LeaderRecord()
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    fields: dict[str, Any] = decoded  # pyright: ignore[reportUnknownVariableType]
    return _record_from_fields(fields, transitions_key="leaderTransitions")


def annotation_from_record(record: LeaderRecord) -> str:
    """The annotation value for `record`, byte for byte as client-go writes it."""
    return _go_json(
        {
            "holderIdentity": record.holder_identity,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "acquireTime": None
            if record.acquire_time is None
            else format_time(record.acquire_time),
            "renewTime": None if record.renew_time is None else format_time(record.renew_time),
            "leaderTransitions": record.leader_transitions,
        }
    )


# ---------------------------------------------------------------- successor


def nomination_from_annotation(value: object) -> Nomination | None:
    """The nomination in `NOMINEE_ANNOTATION`'s value; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    fields: dict[str, Any] = decoded  # pyright: ignore[reportUnknownVariableType]
    identity, term = fields.get("identity"), _whole(fields.get("term"))
    if not isinstance(identity, str) or term is None or term < 0:
        return None  # (an empty identity is a term open to nominations)
    return Nomination(identity, term)


def nomination_to_annotation(nominee: Nomination) -> str:
    """`NOMINEE_ANNOTATION`'s value for `nominee`."""
    return _go_json({"identity": nominee.identity, "term": nominee.term})
