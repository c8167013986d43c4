"""Watch events decoded by `KubeClient.watch`: typed events, ERROR events raised as the
`ApiError` of their status (410 as `GoneError`), malformed lines as a broken stream."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from trio_election._kube import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    KubeClient,
    KubeConfig,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from trio_election._kube._watch import WatchEvent, decode_event

SERVER = "https://api.test:6443"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"


def lease(name: str, version: str) -> dict[str, Any]:
    return {"kind": "Lease", "metadata": {"name": name, "resourceVersion": version}}


def status(code: object, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def stream(*lines: object) -> httpx.MockTransport:
    """A server whose watch answers 200 with `lines` (JSON-encoded unless bytes), then ends."""
    body = b"".join(
        line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n" for line in lines
    )
    return httpx.MockTransport(lambda _request: httpx.Response(200, content=body))


async def read(
    transport: httpx.AsyncBaseTransport, got: list[WatchEvent], *, token: str | None = None
) -> None:
    """Read the watch into `got` until it ends or raises."""
    config = KubeConfig(server=SERVER, token=token)
    async with (
        KubeClient(config, transport=transport) as client,
        aclosing(client.watch(LEASES, params={"watch": "1"})) as events,
    ):
        async for event in events:
            got.append(event)  # kept when the stream raises next


async def test_events_are_typed() -> None:
    events = [
        {"type": "ADDED", "object": lease("a", "5")},
        {"type": "MODIFIED", "object": lease("a", "6")},
        {"type": "BOOKMARK", "object": {"kind": "Lease", "metadata": {"resourceVersion": "9"}}},
        {"type": "DELETED", "object": lease("a", "10")},
    ]
    got: list[WatchEvent] = []
    await read(stream(*events, b"\n"), got)
    assert [(e.type, e.name, e.version) for e in got] == [
        ("ADDED", "a", "5"),
        ("MODIFIED", "a", "6"),
        ("BOOKMARK", "", "9"),
        ("DELETED", "a", "10"),
    ]
    assert got[0].object == lease("a", "5")


def test_a_missing_name_or_version_reads_as_empty() -> None:
    event = decode_event('{"type": "ADDED", "object": {"metadata": []}}', path=LEASES)
    assert (event.name, event.version) == ("", "")


async def test_a_gone_event_raises_gone_after_the_events_before_it() -> None:
    expired = status(410, "Expired", "too old resource version: 5 (9)")
    got: list[WatchEvent] = []
    with pytest.raises(GoneError) as info:
        await read(
            stream(
                {"type": "ADDED", "object": lease("a", "5")}, {"type": "ERROR", "object": expired}
            ),
            got,
        )
    assert [e.version for e in got] == ["5"]
    error = info.value
    assert (error.status, error.reason, error.message) == (410, "Expired", expired["message"])
    assert (error.verb, error.resource) == ("watch", "leases")


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (500, "InternalError", ServerError),
        (504, "Timeout", ServerError),
        (429, "TooManyRequests", TooManyRequestsError),
        (401, "Unauthorized", UnauthorizedError),
        (403, "Forbidden", ForbiddenError),
        (404, "NotFound", NotFoundError),
        (409, "Conflict", ConflictError),
        (409, "AlreadyExists", AlreadyExistsError),
        (422, "Invalid", InvalidError),
        (400, "BadRequest", ApiError),
    ],
)
async def test_an_error_event_raises_the_error_of_its_status(
    code: int, reason: str, error: type[ApiError]
) -> None:
    got: list[WatchEvent] = []
    with pytest.raises(ApiError) as info:
        await read(stream({"type": "ERROR", "object": status(code, reason, "boom")}), got)
    assert type(info.value) is error
    assert (info.value.status, info.value.reason, info.value.message) == (code, reason, "boom")
    assert got == []


async def test_a_forbidden_event_names_what_to_grant() -> None:
    refused = status(
        403,
        "Forbidden",
        'User "u" cannot watch resource "leases" in API group "coordination.k8s.io" in the namespace "ns"',
    )
    with pytest.raises(ForbiddenError) as info:
        await read(stream({"type": "ERROR", "object": refused}), [])
    assert (info.value.verb, info.value.resource) == ("watch", "leases")
    assert 'to a Role in namespace "ns"' in info.value.hint


@pytest.mark.parametrize("code", [None, "410", 200, True])
async def test_an_error_event_without_an_error_code_is_a_server_failure(code: object) -> None:
    with pytest.raises(ServerError) as info:
        await read(stream({"type": "ERROR", "object": status(code, "", "")}), [])
    assert (info.value.status, info.value.reason) == (500, "InternalError")
    assert '"kind":"Status"' in info.value.message  # no message: the Status itself


async def test_credentials_in_an_error_event_are_masked() -> None:
    echoed = status(500, "InternalError", "you sent Bearer tok-SECRET")
    with pytest.raises(ServerError) as info:
        await read(stream({"type": "ERROR", "object": echoed}), [], token="tok-SECRET")
    assert "SECRET" not in str(info.value)
    assert "you sent Bearer ***" in info.value.message


@pytest.mark.parametrize(
    "line",
    [
        {"type": "MODIFIED", "object": "garbage"},
        {"type": "MODIFIED"},
        {"object": lease("a", "5")},
        {"type": "CHANGED", "object": lease("a", "5")},
        {"type": "ERROR", "object": "garbage"},
        ["ADDED", lease("a", "5")],
        "ADDED",
    ],
)
async def test_a_malformed_event_breaks_the_stream(line: object) -> None:
    got: list[WatchEvent] = []
    with pytest.raises(ApiConnectionError, match=f"GET {LEASES}: malformed watch event"):
        await read(stream({"type": "ADDED", "object": lease("a", "5")}, line), got)
    assert [e.version for e in got] == ["5"]


def test_a_line_that_is_not_json() -> None:
    with pytest.raises(ApiConnectionError, match="a watch event is not JSON"):
        decode_event("{not json", path=LEASES)
