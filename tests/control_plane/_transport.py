"""Test plumbing for the real-apiserver tests: a transport that records and can partition."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import trio

from trio_election._kube._backend import use_closing_backend

if TYPE_CHECKING:
    from trio_election.testing import ControlPlane


class Recorder(httpx.AsyncBaseTransport):
    """A TLS transport to the control plane that keeps (verb, resource, status) per request,
    and can hold every request (a partition) until healed. Shared by the lock tests and the
    election scenarios."""

    def __init__(self, control_plane: ControlPlane) -> None:
        # as KubeClient's own transports: a cancelled TLS handshake closes its socket
        self._inner = use_closing_backend(
            httpx.AsyncHTTPTransport(verify=control_plane.ssl_context())
        )
        self.requests: list[tuple[str, str, int]] = []
        self.hanging = False
        self._healed = trio.Event()

    def hang(self) -> None:
        self.hanging = True

    def heal(self) -> None:
        self.hanging = False
        self._healed.set()
        self._healed = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        while self.hanging:
            await self._healed.wait()
        response = await self._inner.handle_async_request(request)
        parts = request.url.path.rstrip("/").split("/")
        watch = request.url.params.get("watch") in ("1", "true")
        named = len(parts) % 2 == 0 if parts[1] == "apis" else len(parts) % 2 == 1
        verb = {
            "GET": ("get" if named else "watch" if watch else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }[request.method]
        resource = parts[-2] if named else parts[-1]
        self.requests.append((verb, resource, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def verbs(self) -> list[str]:
        return [verb for verb, _, _ in self.requests]

    @property
    def conflicts(self) -> int:
        """How many requests were answered 409 Conflict."""
        return sum(status == 409 for _, _, status in self.requests)
