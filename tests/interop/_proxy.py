"""A loopback TCP proxy that can cut one candidate off from the apiserver and let it back.

While cut off (`partition()`), nothing passes in either direction: bytes already sent are
held, not dropped, and delivered when the partition heals (`heal()`), as TCP retransmits
them after a real network partition. Connections stay open; new ones are accepted but see
no bytes either. TLS is end to end (the proxy sees only bytes), so the candidate's
kubeconfig points at the proxy and still verifies the apiserver's certificate for
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self


class Proxy:
    """Forwards 127.0.0.1:<port> to `upstream`; one pair of threads per connection."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def partition(self) -> None:
        """From now on hold every byte, both ways, until `heal()`."""
        self._open.clear()

    def heal(self) -> None:
        """Deliver what was held and pass bytes again."""
        self._open.set()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                sock.close()
                return False
            self._sockets.add(sock)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            if not self._track(server):
                return
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                self._open.wait()
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, set()
        self._open.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._acceptor.join(5)
