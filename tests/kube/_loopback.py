"""Real servers on 127.0.0.1 for the TLS tests: an HTTPS API stand-in and a CONNECT proxy."""

from __future__ import annotations

import json
import ssl
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import trustme

WATCH_PATH = "/watch"
"""A request for this path gets a stream of three JSON lines that never ends."""

QUIET_WATCH_PATH = "/quiet-watch"
"""A stream of one JSON line, then nothing for `QUIET` seconds, one more line, and its end."""

QUIET_PATH = "/quiet"
"""An answer (`{"ok": true}`) only after `QUIET` seconds."""

QUIET = 5.5
"""Longer than httpx's default read timeout (5 s)."""


@dataclass
class Seen:
    """What one request looked like from the server's side."""

    path: str
    headers: dict[str, str]
    sni: str | None
    client_cn: str | None


@dataclass
class HttpsServer:
    port: int
    requests: list[Seen] = field(default_factory=list[Seen])
    sni: list[str | None] = field(default_factory=list[str | None])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


async def _read_head(stream: trio.abc.Stream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise trio.BrokenResourceError("closed before the request head")
        data += chunk
    return data


def _common_name(cert: dict[str, Any] | None) -> str | None:
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@asynccontextmanager
async def https_server(
    cert: trustme.LeafCert, client_ca: trustme.CA
) -> AsyncGenerator[HttpsServer]:
    """Serve HTTPS with `cert`; a client certificate signed by `client_ca` is asked for
    (not required) and its CN recorded. Each answer echoes nothing secret: `{"ok": true}`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)  # pyright: ignore[reportUnknownMemberType]
    client_ca.configure_trust(context)  # pyright: ignore[reportUnknownMemberType]
    context.verify_mode = ssl.CERT_OPTIONAL
    server = HttpsServer(port=0)

    def on_sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        server.sni.append(name)

    context.sni_callback = on_sni

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            await stream.do_handshake()
            head = (await _read_head(stream)).decode("latin-1")
            request_line, *header_lines = head.split("\r\n\r\n")[0].split("\r\n")
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            path = request_line.split(" ")[1]
            server.requests.append(
                Seen(
                    path=path,
                    headers=headers,
                    sni=server.sni[-1] if server.sni else None,
                    client_cn=_common_name(stream.getpeercert()),
                )
            )
            if path.startswith(QUIET_WATCH_PATH):
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for n in range(2):
                    if n:
                        await trio.sleep(QUIET)
                    event = json.dumps({"type": "ADDED", "object": {"n": n}}).encode() + b"\n"
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
                await stream.send_all(b"0\r\n\r\n")
                await stream.aclose()
                return
            if path.startswith(QUIET_PATH):
                await trio.sleep(QUIET)
            if path.startswith(WATCH_PATH):
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for n in range(3):
                    event = json.dumps({"type": "ADDED", "object": {"n": n}}).encode() + b"\n"
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
                while await stream.receive_some(65536):
                    pass  # until the client goes away
                return
            body = b'{"ok": true}'
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a client that refused our certificate, or went away

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, handle, 0, context, host="127.0.0.1")
        )
        server.port = listeners[0].transport_listener.socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


@dataclass
class Proxy:
    port: int
    connects: list[str] = field(default_factory=list[str])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while chunk := await source.receive_some(65536):
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await sink.aclose()


@asynccontextmanager
async def connect_proxy() -> AsyncGenerator[Proxy]:
    """An HTTP proxy that only tunnels (CONNECT), to loopback targets, recording each."""
    proxy = Proxy(port=0)

    async def handle(client: trio.SocketStream) -> None:
        try:
            head = (await _read_head(client)).decode("latin-1")
            method, target, _ = head.split("\r\n")[0].split(" ")
            proxy.connects.append(f"{method} {target}")
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host != "127.0.0.1":
                await client.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = await trio.open_tcp_stream(host, int(port))
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, client, upstream)
                nursery.start_soon(_pipe, upstream, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        proxy.port = listeners[0].socket.getsockname()[1]
        yield proxy
        nursery.cancel_scope.cancel()


async def _receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise trio.BrokenResourceError("closed in the middle of a SOCKS message")
        data += chunk
    return data


@asynccontextmanager
async def socks5_proxy() -> AsyncGenerator[Proxy]:
    """A SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) to loopback targets,
    recording each target as `host:port`."""
    proxy = Proxy(port=0)

    async def handle(client: trio.SocketStream) -> None:
        try:
            _version, methods = await _receive_exactly(client, 2)
            await _receive_exactly(client, methods)
            await client.send_all(b"\x05\x00")  # no authentication
            _version, command, _reserved, kind = await _receive_exactly(client, 4)
            if kind == 1:
                host = ".".join(str(b) for b in await _receive_exactly(client, 4))
            elif kind == 3:
                [size] = await _receive_exactly(client, 1)
                host = (await _receive_exactly(client, size)).decode()
            else:
                return
            port = int.from_bytes(await _receive_exactly(client, 2), "big")
            proxy.connects.append(f"{host}:{port}")
            if command != 1 or host not in ("127.0.0.1", "localhost"):
                await client.send_all(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00")
                return
            upstream = await trio.open_tcp_stream(host, port)
            await client.send_all(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, client, upstream)
                nursery.start_soon(_pipe, upstream, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        proxy.port = listeners[0].socket.getsockname()[1]
        yield proxy
        nursery.cancel_scope.cancel()
