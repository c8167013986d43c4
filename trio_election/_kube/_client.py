"""`KubeClient`: a small Kubernetes REST client over httpx, its connections kept alive."""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import json as jsonlib
import logging
import math
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, final

import anyio
import httpx

from .._version import __version__
from ._auth import Credentials
from ._backend import use_closing_backend
from ._errors import ApiConnectionError, error_from_response
from ._failures import connection_error
from ._json import as_mapping
from ._proxy import choose_proxy
from ._tls import ssl_context
from ._urls import check_server_url
from ._watch import WatchEvent, decode_event

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
    from types import TracebackType

    from ._config import KubeConfig

__all__ = ["KubeClient"]

logger = logging.getLogger("trio_election.kube")

USER_AGENT = f"trio-election/{__version__}"

CONNECT_TIMEOUT = 30.0
"""Seconds to open a connection (TCP and TLS handshake), as client-go's dialer allows."""

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}

_DRAIN_WITHIN = 1.0
"""How long a stopped watch may take to wind down its (closed) response stream."""

_URLS_KEPT = 4096
"""At most this many parsed URLs kept per client (one per lock object)."""

REQUEST_CONNECTIONS = 2
"""Requests of one client at once (each on a connection of its own); more wait their turn,
the one of the earliest deadline first (a renewal before a starting election's read),
each within its own deadline. A burst (many elections starting together) waits rather than
opening connections that would stay open for good; two let a slow request (a LIST of a
large collection) leave the renewals a connection."""

MOST_REQUEST_CONNECTIONS = 32
"""What `REQUEST_CONNECTIONS` may grow to when requests keep waiting (see `GROW_WAITING`)."""

GROW_WAITING = 0.25
"""The share of the time to its deadline that a request may wait for a turn: beyond it, the
client opens twice as many request connections (at most once every `GROW_EVERY` seconds).
For a load that the connections do not carry (a thousand elections renewing in one
process: each write waits for etcd's commit, so that two connections carry a few hundred a
second), not for a burst that they clear in time. A request without a deadline never makes
them grow. Connections are never closed for being idle: each would cost a TLS handshake
when the load comes back."""

GROW_EVERY = 0.5
"""Seconds between two doublings of the request connections, at the least."""


@final
class _Lender:
    """httpx transports of one connection each, lent for one request or one watch at a time.

    The last one returned is lent first, so a light load keeps to a few connections, each
    kept alive (a watch that the server ends leaves its connection to the next watch: no
    handshake). Why not one pool of many connections: httpcore's pool looks at each of its
    connections, and at each waiting request, on every request, and for each idle
    connection counts all of them again, so that its cost per request grows with the
    square of its size; with every election's watch in it, it also counted the watches
    against its keep-alive limit of 20, and beyond 20 elections each renew paid a TLS
    handshake. A pool of one connection costs the same whatever the number of elections.
    (HTTP/2, one connection for all, was measured too: httpcore reads every stream of a
    connection under one lock, so that a renew waits behind idle watches; and for requests
    alone, its framing cost 1.7 times the CPU of HTTP/1.1 per request; docs/benchmarks.md
    has the figures.)
    """

    def __init__(
        self, make: Callable[[], httpx.AsyncBaseTransport], limit: int | None, most: int = 0
    ) -> None:
        self._make = make
        self._free: list[httpx.AsyncBaseTransport] = []
        self._made: list[httpx.AsyncBaseTransport] = []
        self._limit = limit
        self._most = max(most, limit or 0)
        self._lent = 0
        self._waiting: list[_Waiter] = []
        """A heap: the waiter of the earliest deadline first (then the first come)."""
        self._arrivals = itertools.count()
        self._grown_at = -math.inf

    @asynccontextmanager
    async def lend(self) -> AsyncGenerator[httpx.AsyncBaseTransport]:
        """A transport for one request; blocks for a turn when the limit is reached."""
        transport = await self.take()
        try:
            yield transport
        finally:
            self.give_back(transport)

    async def take(self) -> httpx.AsyncBaseTransport:
        """`lend` without a context manager (a request's hot path): give the transport
        back with `give_back`, always. Blocks for a turn when the limit is reached: the
        request of the earliest deadline (its cancel scopes') has the next one, so that a
        renewal goes before the reads of a burst of elections starting."""
        if self._limit is None or self._lent < self._limit:
            self._lent += 1
            return self._transport()
        return await self._wait()

    def give_back(self, transport: httpx.AsyncBaseTransport) -> None:
        self._free.append(transport)
        self._lent -= 1
        self._hand_on()

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._free:
            return self._free.pop()
        transport = self._make()
        if transport not in self._made:  # a given transport: one for all
            self._made.append(transport)
        return transport

    def _hand_on(self) -> None:
        """Give the turns that the limit allows to the waiters of the earliest deadlines."""
        while self._waiting and (self._limit is None or self._lent < self._limit):
            waiter = heapq.heappop(self._waiting)
            if not waiter.gone:
                self._lent += 1
                waiter.given = True
                waiter.event.set()

    async def _wait(self) -> httpx.AsyncBaseTransport:
        """Blocks until a turn is given. A request that waits a `GROW_WAITING` share of
        the time to its deadline doubles the limit (up to the most allowed)."""
        now = anyio.current_time()
        deadline = anyio.current_effective_deadline()
        waiter = _Waiter(deadline, next(self._arrivals))
        heapq.heappush(self._waiting, waiter)
        grow_at = now + (deadline - now) * GROW_WAITING
        try:
            while True:
                with anyio.CancelScope(deadline=grow_at):
                    await waiter.event.wait()
                if waiter.given:
                    return self._transport()
                now = anyio.current_time()
                limit = self._limit
                assert limit is not None
                if now - self._grown_at >= GROW_EVERY and limit < self._most:
                    self._grown_at = now
                    self._limit = min(2 * limit, self._most)
                    logger.debug("requests wait: up to %d connections", self._limit)
                    self._hand_on()
                grow_at = now + GROW_EVERY
        except BaseException:
            waiter.gone = True
            if waiter.given:  # given as it was cancelled: the turn is the next one's
                self._lent -= 1
                self._hand_on()
            raise

    async def aclose(self) -> None:
        for transport in self._made:
            await transport.aclose()


@dataclass(order=True, slots=True)
class _Waiter:
    """A request waiting for a turn: ordered by deadline, then arrival."""

    deadline: float
    arrival: int
    event: anyio.Event = field(default_factory=anyio.Event, compare=False)
    given: bool = field(default=False, compare=False)
    gone: bool = field(default=False, compare=False)
    """Cancelled while waiting: skipped when turns are handed on."""


@final
@dataclass(frozen=True, slots=True, eq=False)
class _Pools:
    """The connections of one set of credentials: requests, and watches apart."""

    requests: _Lender
    watches: _Lender

    async def aclose(self) -> None:
        await self.requests.aclose()
        await self.watches.aclose()


@final
class KubeClient:
    """A Kubernetes API client: JSON requests and watch streams, with typed errors.

    Use it as ``async with KubeClient(KubeConfig.load()) as client``. It sets no timeouts
    of its own: bound calls with cancel scopes (trio's or anyio's). A 401 is retried once after
    re-reading the token file or re-running the exec plugin. Each distinct `Warning`
    header from the server is logged once.
    """

    def __init__(
        self, config: KubeConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._transport = transport
        self._credentials = Credentials(config)
        self._http: _Pools | None = None
        self._http_cert: bytes | None = None
        self._in_use: dict[_Pools, int] = {}
        self._warned: set[str] = set()
        self._answered = False
        """Whether the server has answered once (any status) since this client started."""
        where = config.source or "KubeConfig"
        check_server_url(config.server, f"{where}: server")
        self._base = config.server.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        """The URL of each path requested without parameters (a lock's object): parsing
        one again was 20 µs of every renew."""
        self._extensions = {
            # reading waits as long as the caller's cancel scope allows (a watch is quiet
            # for minutes); only connecting (TCP and TLS handshake) has a bound of its own
            "timeout": httpx.Timeout(None, connect=CONNECT_TIMEOUT).as_dict(),
        }
        self._proxy = choose_proxy(config) if transport is None else None
        """Where requests go through, when not straight to the server: the kubeconfig's
        proxy-url, else the environment's (HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""
        if config.exec is None:
            self._http = self._make_http(config.client_certificate_data, config.client_key_data)

    def __repr__(self) -> str:
        return f"<KubeClient {self.config.server} namespace={self.namespace!r}>"

    @property
    def namespace(self) -> str:
        """The configuration's namespace (the context's, or the pod's)."""
        return self.config.namespace

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for http in {*self._in_use, *([self._http] if self._http is not None else [])}:
            await http.aclose()

    def _make_http(self, cert: bytes | None, key: bytes | None) -> _Pools:
        config = self.config
        context = ssl_context(
            ca=config.certificate_authority_data,
            insecure=config.insecure_skip_tls_verify,
            cert=cert,
            key=key,
            where=config.source or config.server,
            server_name=config.tls_server_name,
        )

        def transport() -> httpx.AsyncBaseTransport:
            # a cancelled TLS handshake closes its socket (httpcore leaves it to the GC)
            return use_closing_backend(
                httpx.AsyncHTTPTransport(
                    verify=context,
                    proxy=self._proxy,
                    trust_env=False,  # the proxy is chosen above, once
                    limits=httpx.Limits(
                        max_connections=1,
                        max_keepalive_connections=1,
                        # kept until the server closes it: a follower sends nothing for as long
                        # as it follows, then takes a released lock at once, with no handshake
                        keepalive_expiry=None,
                    ),
                )
            )

        if self._transport is not None:  # one transport makes every connection
            shared = self._transport
            return _Pools(_Lender(lambda: shared, None), _Lender(lambda: shared, None))
        requests = _Lender(transport, REQUEST_CONNECTIONS, MOST_REQUEST_CONNECTIONS)
        return _Pools(requests, _Lender(transport, None))

    async def _client(self) -> _Pools:
        if self.config.exec is not None:
            result = await self._credentials.exec_result()
            cert = result.client_certificate_data
            # a given transport makes its own connections: no certificate of ours to change
            renew = cert != self._http_cert and self._transport is None
            if self._http is None or renew:
                old = self._http
                self._http = self._make_http(cert, result.client_key_data)
                self._http_cert = cert
                if old is not None and old not in self._in_use:
                    await old.aclose()  # else the last request using it closes it
        assert self._http is not None
        return self._http

    @asynccontextmanager
    async def _borrowed(self) -> AsyncGenerator[_Pools]:
        """The current httpx clients, kept open while in use: when an exec plugin's client
        certificate changes, requests and watches still running on the old ones finish."""
        http = await self._hold()
        try:
            yield http
        finally:
            await self._release(http)

    async def _hold(self) -> _Pools:
        http = await self._client()
        self._in_use[http] = self._in_use.get(http, 0) + 1
        return http

    async def _release(self, http: _Pools) -> None:
        left = self._in_use.pop(http) - 1
        if left:
            self._in_use[http] = left
        elif http is not self._http:
            with anyio.CancelScope(shield=True):
                await http.aclose()

    def _note_warnings(self, response: httpx.Response) -> None:
        """Note that the server answered, and log each new warning it sent."""
        self._answered = True
        for header in response.headers.get_list("warning"):
            for text in _warning_texts(header):
                if text not in self._warned:
                    self._warned.add(text)
                    logger.warning("%s: the API server warns: %s", self.config.server, text)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON body; raise a typed `ApiError`."""
        body = None if json is None else jsonlib.dumps(json).encode()
        for attempt in range(2):
            # no context managers on this path (each costs a few per cent of a renew)
            pools = await self._hold()
            try:
                lender = pools.requests
                transport = await lender.take()
                try:
                    headers = await self._credentials.headers()
                    generation = self._credentials.generation
                    if body is not None:
                        headers["Content-Type"] = content_type or "application/json"
                    request = self._request(method, path, params, headers, body)
                    try:
                        response = await transport.handle_async_request(request)
                        try:
                            content = await _body_of(response)
                        finally:
                            await response.aclose()
                    except httpx.HTTPError as exc:
                        raise connection_error(self.config, exc, answered=self._answered) from None
                finally:
                    lender.give_back(transport)
            finally:
                await self._release(pools)
            self._note_warnings(response)
            if response.status_code == 401 and attempt == 0 and self._credentials.refreshable:
                await self._credentials.refresh(generation)
                continue
            if response.status_code >= 400:
                raise error_from_response(
                    response.status_code,
                    content,
                    method=method,
                    path=path,
                    params=dict(params) if params else None,
                    retry_after=response.headers.get("retry-after"),
                    secrets=self._secrets(headers),
                )
            try:
                decoded = jsonlib.loads(content)
            except ValueError:
                raise ApiConnectionError(
                    f"{method} {path}: the server's answer is not JSON"
                ) from None
            mapping = as_mapping(decoded)
            return mapping if mapping is not None else {"items": decoded}
        raise AssertionError("unreachable")  # pragma: no cover

    async def watch(self, path: str, *, params: Mapping[str, str]) -> AsyncGenerator[WatchEvent]:
        """Yield each event of a watch stream, decoded, until the server ends it.

        An ``ERROR`` event raises the `ApiError` of its status, as a response of that
        status does (`GoneError` for 410: the version asked for is too old, list again);
        a line that is not an event raises `ApiConnectionError`. No read timeout: a quiet
        watch sends nothing for minutes. Close the generator with `contextlib.aclosing`.
        """
        query = dict(params)
        for attempt in range(2):
            async with self._borrowed() as pools, pools.watches.lend() as transport:
                headers = await self._credentials.headers()
                generation = self._credentials.generation
                request = self._request("GET", path, query, headers, None)
                try:
                    async with _exchange(transport, request) as response:
                        self._note_warnings(response)
                        if (
                            response.status_code == 401
                            and attempt == 0
                            and self._credentials.refreshable
                        ):
                            await self._credentials.refresh(generation)
                            continue
                        secrets = self._secrets(headers)
                        if response.status_code >= 400:
                            content = await response.aread()
                            raise error_from_response(
                                response.status_code,
                                content,
                                method="GET",
                                path=path,
                                params=query,
                                secrets=secrets,
                            )
                        async with _lines(response) as lines:
                            async for line in lines:
                                if line.strip():
                                    yield decode_event(
                                        line, path=path, params=query, secrets=secrets
                                    )
                        return
                except httpx.HTTPError as exc:
                    raise connection_error(self.config, exc, answered=self._answered) from None

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
    ) -> httpx.Request:
        """One request to the server, for a transport: no client in between (an
        `httpx.AsyncClient` would merge URLs, wrap auth and redirects and keep cookies on
        every request, a fifth of the CPU of a renew), so this does what of it we need."""
        headers.update(_HEADERS)
        url: httpx.URL | None
        if params:
            url = httpx.URL(self._base + path, params=dict(params))
        else:
            url = self._urls.get(path)
            if url is None:
                if len(self._urls) >= _URLS_KEPT:
                    self._urls.clear()
                url = self._urls[path] = httpx.URL(self._base + path)
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=body,
            extensions=self._extensions,
        )
        if body is not None:
            request.stream = _Body(body)
        return request

    def _secrets(self, headers: Mapping[str, str]) -> list[str]:
        """What must never show in a message: the credentials of the request just sent."""
        found = [self.config.token or "", self.config.password or ""]
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        found.append(credential)
        if credential and scheme == "Basic":
            found.append(base64.b64decode(credential).decode("utf-8", "replace"))
        return [secret for secret in found if secret]


@final
class _Body(httpx.AsyncByteStream):
    """A request body whose iterator is a plain object, not an async generator.

    httpx's own (`ByteStream.__aiter__`) is an async generator, which httpcore leaves
    suspended when sending fails half-way (a connection reset by a restarting apiserver);
    the event loop then warns when the garbage collector finds it (encode/httpx#3686)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Once(self._data)


@final
class _Once:
    """An async iterator that yields `data` once."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


_WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')
"""One warning of a `Warning` header (RFC 7234): `299 - "text"`, the text quoted."""


def _warning_texts(header: str) -> list[str]:
    """The texts of a `Warning` header (one, or several joined by commas on the way)."""
    texts = [re.sub(r"\\(.)", r"\1", m.group(1)) for m in _WARNING.finditer(header)]
    return texts or [header]


async def _body_of(response: httpx.Response) -> bytes:
    """The whole body of `response`, read from its stream: httpx's `aread` passes each
    chunk through a chain of async generators (decoders, a chunker), for no change when
    the body is not encoded (we ask for no encoding)."""
    if "content-encoding" in response.headers:
        return await response.aread()
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):  # pragma: no cover - a sync transport
        return await response.aread()
    chunks = [chunk async for chunk in stream]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@asynccontextmanager
async def _exchange(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> AsyncGenerator[httpx.Response]:
    """The response to `request`, its body not read yet; closed on exit."""
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        yield response
    finally:
        await response.aclose()


@asynccontextmanager
async def _lines(response: httpx.Response) -> AsyncGenerator[AsyncIterator[str]]:
    """`response.aiter_lines()`, run to its end on exit, however the watch stops.

    httpx reads a body through a chain of async generators, one inside the other; closing
    the outermost leaves the inner ones suspended, and when the garbage collector finds
    them the event loop warns (a ResourceWarning for each). Closing the response first
    makes the chain end at once (no more data, or an error), so that running it to its end
    takes no time."""
    lines = response.aiter_lines()
    try:
        yield lines
    finally:
        with anyio.move_on_after(_DRAIN_WITHIN, shield=True):
            await response.aclose()
            with contextlib.suppress(Exception):  # the stream was closed on purpose
                async for _line in lines:
                    pass
