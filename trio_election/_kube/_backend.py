"""httpcore's network backend, with a TLS handshake that closes its socket when cancelled.

httpcore's trio and anyio backends close the TCP stream when a TLS handshake fails with an
`Exception`, not when it is cancelled (trio's `Cancelled`, asyncio's `CancelledError`): the
socket is then left to the garbage collector, which warns. A handshake is cancelled
whenever a renew deadline or a caller's cancel scope fires while the server accepts but has
not answered yet (an apiserver that is starting). The streams made here close it at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import anyio
import httpcore
import sniffio

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable

    import httpx

__all__ = ["closing_backend", "use_closing_backend"]


@final
class _ClosingStream(httpcore.AsyncNetworkStream):
    """A network stream whose `start_tls` closes it when the handshake does not finish."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Blocks for the handshake; on any way out but success (cancellation included)
        the TCP stream is closed before the exception goes on."""
        try:
            tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise
        return _ClosingStream(tls)  # a proxy's TLS may carry the server's TLS

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


@final
class _ClosingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend for the running library (trio's under trio, anyio's under
    asyncio, as httpcore chooses), its streams made `_ClosingStream`s."""

    def __init__(self) -> None:
        self._backends: dict[str, httpcore.AsyncNetworkBackend] = {}

    def _backend(self) -> httpcore.AsyncNetworkBackend:
        library = sniffio.current_async_library()
        backend = self._backends.get(library)
        if backend is None:
            # httpcore defines a stand-in of each when its library is missing, which type
            # checkers see too: the check tells them which one this is
            made: object = httpcore.TrioBackend() if library == "trio" else httpcore.AnyIOBackend()
            assert isinstance(made, httpcore.AsyncNetworkBackend)
            backend = self._backends[library] = made
        return backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend().connect_tcp(
            host, port, timeout, local_address, socket_options
        )
        return _ClosingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend().connect_unix_socket(path, timeout, socket_options)
        return _ClosingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend().sleep(seconds)


closing_backend = _ClosingBackend()
"""One for every transport: it holds no connection, only httpcore's backend objects."""


def use_closing_backend(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncHTTPTransport:
    """`transport`, its connections made by `closing_backend`.

    httpx takes no network backend; its pool (a connection pool, or an HTTP or SOCKS proxy,
    all httpcore pools) keeps the one its connections are made with in `_network_backend`,
    read at each new connection. Raises `RuntimeError` if an httpcore without it is
    installed (rather than leaking sockets without a word)."""
    pool: object = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError(
            f"httpcore {httpcore.__version__}: its connection pool has no network backend"
            " to replace; install httpcore>=1.0,<2"
        )
    setattr(pool, "_network_backend", closing_backend)  # noqa: B010  (a private attribute)
    return transport
