"""`trio-election run --http ADDR`: the leader's name, health and metrics over plain HTTP.

- ``GET /``: ``{"name": "<leader>"}``, the shape of the old Kubernetes ``leader-elector``
  sidecar (``""`` while nobody holds the lock);
- ``GET /healthz``: 200 unless this candidate leads with renewals overdue, then 500.
  "Leads" is client-go's ``IsLeader()`` as its ``HealthzAdaptor`` uses it: the record last
  observed names this candidate (so a leader cut off from the apiserver still counts);
  "overdue": its last successful renew is more than ``lease_duration + tolerance`` old;
- ``GET /metrics``: Prometheus text format: client-go's ``leader_election_master_status``
  and ``leader_election_slowpath_total``, the library's ``trio_election_*`` families, and
  the runner's (``trio_election_command_running``, ``trio_election_command_exits_total``,
  ``trio_election_leader_info``, ``trio_election_term``); label ``name``: the lock object's
  name, as client-go's.

With ``run --shards`` (`ShardSidecar`): ``GET /`` gives the member's view of its group
(identity, owned shards, live members, each shard's holder), ``/healthz`` fails while
any shard it leads has overdue renewals, and ``/metrics`` has each shard's families
(label ``name`` its Lease's name), the group's ``trio_election_shards*`` families (label
``name`` the group's name), and the runner's per shard.

A tiny HTTP/1.1 server on `trio.serve_tcp`: one request per connection, GET and HEAD only,
the request line and headers read with a size and a time limit, no dependency.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

import trio

import trio_election as te
from trio_election._metrics import Family, families, render_text, shard_families

if TYPE_CHECKING:
    from collections.abc import Callable

    from trio_election._metrics import Labels

__all__ = ["Response", "ShardSidecar", "Sidecar", "parse_address", "serve_http"]

logger = logging.getLogger("trio_election.cli")

MAX_HEAD = 16 * 1024
"""The longest request head (request line and headers) read, in bytes."""

HEAD_TIMEOUT = 10.0
"""Seconds a client has to send its request head."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


@final
@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def parse_address(text: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``PORT``; ``[::1]:PORT`` for IPv6.

    Raises `ValueError` with what is expected."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text) if port_text.isdigit() else -1
    if not 0 <= port <= 65535 or "[" in host or "]" in host:
        raise ValueError(
            f"invalid address {text!r}: give HOST:PORT (e.g. 127.0.0.1:4040), :PORT for "
            "every interface, or [::1]:PORT; port 0 picks a free one"
        )
    return (host or None), port


async def serve_http(
    app: Callable[[str, str], Response],
    listeners: list[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app(method, path)` on `listeners` (bound by the caller, so that a bad
    address fails before anything else starts) until cancelled; `task_status.started`
    gets the listeners."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _handle(stream, app)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            logger.debug("HTTP connection ended early: %s", exc)
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(handle, listeners, task_status=task_status)


async def _handle(stream: trio.SocketStream, app: Callable[[str, str], Response]) -> None:
    head = b""
    with trio.move_on_after(HEAD_TIMEOUT) as timer:
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > MAX_HEAD:
                await _send(stream, "GET", Response(431, b"request head too large\n"))
                return
    if timer.cancelled_caught:
        await _send(stream, "GET", Response(408, b"request head not received in time\n"))
        return
    request_line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        await _send(stream, "GET", Response(400, b"malformed request line\n"))
        return
    method, target = parts[0], parts[1]
    if method not in ("GET", "HEAD"):
        await _send(stream, "GET", Response(405, b"only GET and HEAD\n"))
        return
    await _send(stream, method, app(method, target.split("?", 1)[0]))


async def _send(stream: trio.SocketStream, method: str, response: Response) -> None:
    reason = _REASONS.get(response.status, "")
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    await stream.send_all(head if method == "HEAD" else head + response.body)


@final
@dataclass(slots=True)
class Sidecar:
    """What the endpoints show of one `run`: its election and what the runner counts."""

    election: te.Election | None
    """None until the election has read the lock once (the apiserver may not answer yet)."""
    name: str
    """The lock object's name (client-go's metric label)."""
    lease_duration: float
    tolerance: float
    """Seconds past `lease_duration` before overdue renewals make /healthz fail."""
    command_running: bool = False
    command_exits: dict[int, int] = field(default_factory=dict[int, int])
    """How often the command exited with each status."""

    def __call__(self, method: str, path: str) -> Response:
        return _route(self, path)

    def leader(self) -> Response:
        leader = None if self.election is None else self.election.leader
        body = json.dumps({"name": leader or ""}) + "\n"
        return Response(200, body.encode(), "application/json")

    def overdue(self) -> float | None:
        """Seconds since our last renew when /healthz fails (`te.HealthCheck`'s rule, which
        is client-go's), else None; None before the election has opened (not leading)."""
        if self.election is None:
            return None
        return te.HealthCheck(self.election, self.tolerance).overdue()

    def healthz(self) -> Response:
        age = self.overdue()
        if age is None or self.election is None:
            return Response(200, b"ok\n")
        message = (
            f"leading {self.election.lock} but its record was last renewed {age:.1f} s ago "
            f"(more than lease duration {self.lease_duration:g} s + tolerance "
            f"{self.tolerance:g} s)\n"
        )
        return Response(500, message.encode())

    def metrics(self) -> Response:
        stats = None if self.election is None else self.election.statistics()
        base: Labels = (("name", self.name),)
        leader = "" if stats is None else stats.leader or ""
        extra = [
            Family(
                "trio_election_leader_info",
                "gauge",
                "Always 1; label `leader` is the holder's identity ('' when the lock is free).",
                [((*base, ("leader", leader)), 1.0)],
            ),
            Family(
                "trio_election_command_running",
                "gauge",
                "1 while the command runs (only while leading).",
                [(base, 1.0 if self.command_running else 0.0)],
            ),
            Family(
                "trio_election_command_exits_total",
                "counter",
                "Exits of the command, by exit status.",
                [
                    ((*base, ("status", str(status))), float(count))
                    for status, count in sorted(self.command_exits.items())
                ],
            ),
        ]
        if stats is not None and stats.term is not None:
            extra.append(
                Family(
                    "trio_election_term",
                    "gauge",
                    "The current term: the record's transitions count when it was acquired.",
                    [(base, float(stats.term))],
                )
            )
        own = [] if stats is None else families([stats])
        body = render_text([*own, *extra])
        return Response(200, body.encode(), "text/plain; version=0.0.4; charset=utf-8")


def _route(app: Sidecar | ShardSidecar, path: str) -> Response:
    if path == "/":
        return app.leader()
    if path == "/healthz":
        return app.healthz()
    if path == "/metrics":
        return app.metrics()
    return Response(404, b"not found: try /, /healthz or /metrics\n")


def _metrics_response(all_families: list[Family]) -> Response:
    body = render_text(all_families)
    return Response(200, body.encode(), "text/plain; version=0.0.4; charset=utf-8")


@final
@dataclass(slots=True)
class ShardSidecar:
    """What the endpoints show of one `run --shards`: its group and its commands."""

    shards: te.Shards | None
    """None until the group has been read once."""
    lease_duration: float
    tolerance: float
    commands_running: set[int] = field(default_factory=set[int])
    """The shards whose command runs now."""
    command_exits: dict[tuple[int, int], int] = field(default_factory=dict[tuple[int, int], int])
    """How often the command of each shard exited with each status."""

    def __call__(self, method: str, path: str) -> Response:
        return _route(self, path)

    def leader(self) -> Response:
        shards = self.shards
        view: dict[str, object] = {"identity": None, "owned": [], "members": [], "owners": []}
        if shards is not None:
            view = {
                "identity": shards.identity,
                "owned": sorted(shards.owned),
                "members": sorted(shards.members),
                "owners": list(shards.owners),
            }
        return Response(200, (json.dumps(view) + "\n").encode(), "application/json")

    def healthz(self) -> Response:
        shards = self.shards
        if shards is None:
            return Response(200, b"ok\n")
        now = trio.current_time()
        for shard, stats in enumerate(shards.statistics()):
            # te.HealthCheck's rule (client-go's), for each shard's election
            if stats.leader != stats.identity or stats.renewed_at is None:
                continue
            age = now - stats.renewed_at
            if age > self.lease_duration + self.tolerance:
                message = (
                    f"leading shard {shard} ({stats.lock}) but its record was last renewed "
                    f"{age:.1f} s ago (more than lease duration {self.lease_duration:g} s "
                    f"+ tolerance {self.tolerance:g} s)\n"
                )
                return Response(500, message.encode())
        return Response(200, b"ok\n")

    def metrics(self) -> Response:
        shards = self.shards
        if shards is None:
            return _metrics_response([])
        all_stats = shards.statistics()
        running = Family(
            "trio_election_command_running",
            "gauge",
            "1 while the command of the shard `name` runs (only while leading it).",
        )
        exits = Family(
            "trio_election_command_exits_total",
            "counter",
            "Exits of the command of the shard `name`, by exit status.",
        )
        for shard, stats in enumerate(all_stats):
            base: Labels = (("name", stats.lock.rsplit("/", 1)[-1]),)
            running.samples.append((base, 1.0 if shard in self.commands_running else 0.0))
            for (which, status), count in sorted(self.command_exits.items()):
                if which == shard:
                    exits.samples.append(((*base, ("status", str(status))), float(count)))
        return _metrics_response([*families(all_stats), *shard_families([shards]), running, exits])
