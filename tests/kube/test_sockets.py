"""Plain TCP on loopback: a server that breaks the connection in the middle of a request.

Real sockets and real time (no virtual clock).
"""

from __future__ import annotations

import contextlib
import gc
import socket
import struct
import warnings
from functools import partial

import anyio
import anyio.abc
import pytest
import trio

from trio_election._kube import ApiConnectionError, KubeClient, KubeConfig

BIG = {"spec": {"holderIdentity": "x" * 300_000}}
"""A body that cannot be sent before the server resets the connection."""


async def test_a_reset_in_the_middle_of_a_request_body_leaves_nothing_behind() -> None:
    """httpx stops sending a body when the connection breaks; nothing unfinished is left for
    the garbage collector (trio would warn, and the warning is an error in these tests)."""

    async def reset(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        # close with RST (SO_LINGER 0) while the client is still sending
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, reset, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        config = KubeConfig(server=f"http://127.0.0.1:{port}", token="reset-SECRET")
        async with KubeClient(config) as client:
            for method in ("PATCH", "PUT", "POST"):
                with pytest.raises(ApiConnectionError, match=f"127.0.0.1:{port}") as info:
                    await client.request(method, "/apis/x", json=BIG)
                assert "SECRET" not in str(info.value)
        gc.collect()
        await trio.sleep(0.05)  # trio's finalizer for async generators runs in the loop
        nursery.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_cancelled_tls_handshake_closes_its_connection(anyio_backend: str) -> None:
    """A request cancelled while the server has not finished the TLS handshake (an apiserver
    that accepts but is still starting, a renew deadline firing) closes its connection at
    once, under either runtime: no socket is left open for the garbage collector."""
    hello = anyio.Event()
    closed = anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        # reads the ClientHello, never answers it, and notes when the client hangs up
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                await stream.receive()
                hello.set()
        closed.set()
        await stream.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener, anyio.create_task_group() as servers:
            servers.start_soon(listener.serve, silent)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            config = KubeConfig(server=f"https://127.0.0.1:{port}", insecure_skip_tls_verify=True)
            async with KubeClient(config) as client, anyio.create_task_group() as requests:
                requests.start_soon(client.request, "GET", "/version")
                await hello.wait()
                requests.cancel_scope.cancel()
            with anyio.fail_after(5):
                await closed.wait()
            servers.cancel_scope.cancel()
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
