"""The Toxiproxy driver the fault tests rely on: a toxic really cuts, healing really heals,
and a bad request says what was wrong."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

import pytest
from harness.toxiproxy import ToxiproxyError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from harness.toxiproxy import Toxiproxy


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A loopback TCP server that sends back what it receives; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stopped.set()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
    listener.close()
    thread.join(5)


def echo(port: int, payload: bytes, *, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(payload)
        return conn.recv(4096)


def test_a_black_hole_stops_every_byte_and_healing_lets_them_through(
    toxiproxy: Toxiproxy, echo_server: int
) -> None:
    proxy = toxiproxy.create_proxy("echo-blackhole", upstream=f"127.0.0.1:{echo_server}")
    try:
        assert echo(proxy.port, b"before", timeout=5) == b"before"
        proxy.add_toxic("timeout", stream="upstream", timeout=0)
        assert proxy.toxics() == ["timeout_upstream"]
        with pytest.raises(TimeoutError):
            echo(proxy.port, b"cut", timeout=0.5)
        proxy.heal()
        assert proxy.toxics() == []
        assert echo(proxy.port, b"after", timeout=5) == b"after"
    finally:
        proxy.delete()
    assert "echo-blackhole" not in toxiproxy.client.proxies()


def test_a_refused_request_names_the_problem(toxiproxy: Toxiproxy, echo_server: int) -> None:
    proxy = toxiproxy.create_proxy("echo-errors", upstream=f"127.0.0.1:{echo_server}")
    try:
        with pytest.raises(ToxiproxyError, match=r"toxics: 400 invalid toxic type"):
            proxy.add_toxic("no-such-toxic")
        with pytest.raises(ToxiproxyError, match=r"/proxies: 409"):
            toxiproxy.create_proxy("echo-errors", upstream=f"127.0.0.1:{echo_server}")
    finally:
        proxy.delete()
    proxy.delete()  # gone already: fine
