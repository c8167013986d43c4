"""The fake API's request log and its faults.

A `Fault` answers matching requests with an error, a broken connection, or no answer (a
hang, or a write the server applies late while the client hears nothing). `Conditions`
hold per user until healed: extra latency, watch events that arrive late, a partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

import anyio

if TYPE_CHECKING:
    import httpx

__all__ = ["Conditions", "FakeRequest", "Fault"]


@final
@dataclass(slots=True)
class FakeRequest:
    """One request the fake received; `status` is filled in when it is answered (0 before)."""

    method: str
    path: str
    query: str
    verb: str
    resource: str
    namespace: str
    name: str
    params: dict[str, str]
    body: Any
    content_type: str
    user: str
    status: int = 0
    at: float = 0.0
    """Event-loop time (`anyio.current_time`) at which the request arrived."""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}/{self.namespace}/{self.name} -> {self.status}"


@dataclass(slots=True)
class Fault:
    """What the next `count` matching requests get instead of a normal answer."""

    count: float
    verb: str | None
    resource: str | None
    user: str | None
    status: int = 0  # 0: no answer (a hang, or a late write when apply_after is set)
    reason: str = ""
    error: type[httpx.RequestError] | None = None
    retry_after: float | None = None
    apply_after: float | None = None
    """For a stalled write: the server applies it this many seconds later."""
    released: anyio.Event = field(default_factory=anyio.Event)
    """Set when the fault is healed: hung requests go on."""

    def matches(self, request: FakeRequest) -> bool:
        return (
            (self.verb is None or self.verb == request.verb)
            and (self.resource is None or self.resource == request.resource)
            and (self.user is None or self.user == request.user)
        )


@dataclass(slots=True)
class Conditions:
    """What holds for one user's requests and watches until `FakeKubeApi.heal()`."""

    latency: float = 0.0
    """Seconds each request waits before it is served (on top of the API's `latency`)."""
    watch_lag: float = 0.0
    """Seconds by which watch events reach this user's streams late."""
    partitioned: bool = False
    """Requests get no answer and open watch streams deliver nothing."""

    @property
    def normal(self) -> bool:
        return not (self.latency or self.watch_lag or self.partitioned)
