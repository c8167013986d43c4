"""Toxiproxy, Shopify's TCP fault proxy: its server as a process, driven through its HTTP API.

    with Toxiproxy.start() as toxiproxy:
        proxy = toxiproxy.create_proxy("leader", upstream="127.0.0.1:6443")
        ...  # point a client at proxy.listen; TLS is end to end, the proxy sees bytes
        toxic = proxy.add_toxic("latency", stream="downstream", latency=5000)
        proxy.remove_toxic(toxic.name)  # heal
        proxy.delete()

The toxics (attributes in milliseconds unless said otherwise; `stream` is "upstream" for
bytes from the client to the server, "downstream" for the answers):

- `latency`: `latency`, `jitter`: every chunk of data is held that long;
- `timeout`: `timeout`: no data gets through (it is dropped, not held), and the connection
  is closed after `timeout` ms; 0 keeps it open for ever: a black hole;
- `reset_peer`: `timeout`: the connection is reset (TCP RST) after `timeout` ms;
- `slicer`: `average_size`, `size_variation` (bytes), `delay` (microseconds): data cut
  into small pieces with a pause between them, a trickle;
- `bandwidth`: `rate` (KB/s);
- `limit_data`: `bytes`: the connection is closed once that many bytes have passed;
- `slow_close`: `delay`: the close is held that long.

Toxics act on new and existing connections alike; removing one lets data pass again (what
a `timeout` toxic dropped is lost, so a TLS connection it crossed is usually broken for
good). Everything here blocks (sync `httpx`); call it from a thread in async code.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, final

import httpx

from trio_election._controlplane._binaries import TOXIPROXY, find_toxiproxy
from trio_election._controlplane._processes import (
    ProcessGroup,
    Reaper,
    StartupError,
    free_port,
    wait_for,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Stream",
    "Toxic",
    "ToxicProxy",
    "Toxiproxy",
    "ToxiproxyClient",
    "ToxiproxyError",
]

Stream = Literal["upstream", "downstream"]

_START_WITHIN = 15.0
_ATTEMPTS = 3


class ToxiproxyError(RuntimeError):
    """Toxiproxy refused a request; the message has its status and its error text."""


@final
@dataclass(frozen=True, slots=True)
class Toxic:
    """One toxic as Toxiproxy reports it."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: dict[str, float] = field(default_factory=dict[str, float])


def _check(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in ok:
        try:
            detail: object = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        request = response.request
        raise ToxiproxyError(
            f"{request.method} {request.url.path}: {response.status_code} {detail}"
        )
    return response.json() if response.content else None


@final
class ToxiproxyClient:
    """Toxiproxy's HTTP API at `url` (`http://127.0.0.1:<port>`); close it when done."""

    def __init__(self, url: str) -> None:
        self.url = url
        # loopback only, never through a proxy from the environment
        self._http = httpx.Client(base_url=url, timeout=10, trust_env=False)

    def __repr__(self) -> str:
        return f"<ToxiproxyClient {self.url}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: object = None, *ok: int) -> Any:
        """One API call; raises `ToxiproxyError` unless the status is in `ok` (200, 201,
        204 when none are given); returns the decoded JSON body (None when empty)."""
        response = self._http.request(method, path, json=body)
        return _check(response, *(ok or (200, 201, 204)))

    def version(self) -> str:
        """The server's version (`GET /version`)."""
        answer = self._http.get("/version")
        _check(answer, 200)
        try:
            return str(answer.json()["version"])
        except (ValueError, KeyError, TypeError):
            return answer.text.strip()

    def create_proxy(self, name: str, *, upstream: str, listen: str = "127.0.0.1:0") -> ToxicProxy:
        """A proxy from `listen` (a free port by default) to `upstream` (`host:port`)."""
        made = self.request(
            "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream}, 201
        )
        return ToxicProxy(self, name=name, listen=str(made["listen"]), upstream=upstream)

    def proxies(self) -> dict[str, Any]:
        """Every proxy with its toxics, as `GET /proxies` gives them."""
        found: dict[str, Any] = self.request("GET", "/proxies", None, 200)
        return found

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (`POST /reset`)."""
        self.request("POST", "/reset", None, 200, 204)

    def close(self) -> None:
        self._http.close()


@final
class ToxicProxy:
    """One proxy of a `ToxiproxyClient`: add and remove toxics, switch it off and on."""

    def __init__(self, client: ToxiproxyClient, *, name: str, listen: str, upstream: str) -> None:
        self.client = client
        self.name = name
        self.listen = listen
        """`127.0.0.1:<port>`, where clients connect."""
        self.upstream = upstream

    def __repr__(self) -> str:
        return f"<ToxicProxy {self.name} {self.listen} -> {self.upstream}>"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def add_toxic(
        self,
        type: str,  # noqa: A002  (Toxiproxy's own name)
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: float,
    ) -> Toxic:
        """Add a toxic (see the module documentation for the types and their attributes);
        `toxicity` is the share of connections it applies to. Names must be unique per
        proxy; the default is `<type>_<stream>`."""
        body: dict[str, object] = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        made: dict[str, Any] = self.client.request(
            "POST", f"/proxies/{self.name}/toxics", body, 200
        )
        given: dict[str, Any] = made.get("attributes") or {}
        return Toxic(
            name=str(made["name"]),
            type=str(made["type"]),
            stream=made["stream"],
            toxicity=float(made["toxicity"]),
            attributes={key: float(value) for key, value in given.items()},
        )

    def remove_toxic(self, name: str) -> None:
        """Remove one toxic: data passes again."""
        self.client.request("DELETE", f"/proxies/{self.name}/toxics/{name}", None, 204)

    def toxics(self) -> list[str]:
        """The names of the toxics in place."""
        found: list[dict[str, Any]] = self.client.request(
            "GET", f"/proxies/{self.name}/toxics", None, 200
        )
        return [str(toxic["name"]) for toxic in found]

    def heal(self) -> None:
        """Remove every toxic of this proxy and enable it."""
        for name in self.toxics():
            self.remove_toxic(name)
        self.set_enabled(True)

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: every connection is closed and new ones are refused."""
        self.client.request("POST", f"/proxies/{self.name}", {"enabled": enabled}, 200)

    def delete(self) -> None:
        """Remove the proxy (closing its connections); a proxy already gone is fine."""
        self.client.request("DELETE", f"/proxies/{self.name}", None, 204, 404)


@final
class Toxiproxy:
    """A Toxiproxy server on a free loopback port; start with `Toxiproxy.start()`, end with
    `stop()` or a `with` block. `client` talks to it."""

    def __init__(self, process: ProcessGroup, client: ToxiproxyClient, temp_dir: Path) -> None:
        """Use `Toxiproxy.start()`."""
        self._process = process
        self.client = client
        self.temp_dir = temp_dir
        self._reaper = Reaper()
        if process.pid is not None:
            self._reaper.watch_group(process.pid)
        self._reaper.watch_path(temp_dir)

    @classmethod
    def start(cls, binary: Path | None = None) -> Toxiproxy:
        """Start `binary` (default: the one the build script put in the cache folder) and
        wait until its API answers. Raises `FileNotFoundError` when there is none (run
        `python scripts/build_control_plane.py`), `StartupError` when it does not start."""
        server = binary or find_toxiproxy()
        if server is None:
            raise FileNotFoundError(
                f"no {TOXIPROXY} of the pinned release in the cache folder: run "
                "`python scripts/build_control_plane.py` (needs Go)"
            )
        temp_dir = Path(tempfile.mkdtemp(prefix="trio-election-toxiproxy-"))
        for attempt in range(1, _ATTEMPTS + 1):
            port = free_port()
            process = ProcessGroup(
                "toxiproxy-server",
                [str(server), "-host", "127.0.0.1", "-port", str(port)],
                temp_dir / "toxiproxy.log",
            )
            process.start()
            client = ToxiproxyClient(f"http://127.0.0.1:{port}")

            def answers(client: ToxiproxyClient = client) -> bool:
                with contextlib.suppress(httpx.HTTPError, ToxiproxyError):
                    client.version()
                    return True
                return False

            try:
                wait_for("toxiproxy-server", answers, within=_START_WITHIN,
                         alive=process.check_alive)  # fmt: skip
            except StartupError:
                client.close()
                process.stop(1.0)
                if attempt == _ATTEMPTS:
                    raise
                continue
            return cls(process, client, temp_dir)
        raise AssertionError("unreachable")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Toxiproxy {self.client.url}>"

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def create_proxy(self, name: str, *, upstream: str, listen: str = "127.0.0.1:0") -> ToxicProxy:
        """See `ToxiproxyClient.create_proxy`."""
        return self.client.create_proxy(name, upstream=upstream, listen=listen)

    def stop(self) -> None:
        """Stop the server (its proxies go with it) and remove its files; idempotent."""
        self.client.close()
        self._process.stop(2.0)
        with contextlib.suppress(OSError):
            for path in sorted(self.temp_dir.iterdir()):
                path.unlink()
            self.temp_dir.rmdir()
        self._reaper.release()
