"""Plain TCP on loopback: a server that breaks the connection in the middle of a request.

Real sockets and real time (no virtual clock).
"""

from __future__ import annotations

import gc
import socket
import struct
from functools import partial

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
