"""A fleet of candidate processes of different kinds on one lock of a real control plane.

Several kinds of candidate, each a process of its own that prints one line per event,
``<CLOCK_MONOTONIC seconds> <event> <JSON string>`` (see tests/peers/):

- ``trio``: this library (tests/peers/trio_candidate.py);
- ``clientgo``: client-go's tools/leaderelection with a LeaseLock and ReleaseOnCancel
  (tests/peers/clientgo, built by scripts/build_control_plane.py);
- ``kubepy``: the `kubernetes` Python client's leaderelection (tests/peers/kubepy_candidate.py);
- ``kasyncio``: kubernetes_asyncio's leaderelection (tests/peers/kasyncio_candidate.py);
- ``clientgo-v0.23``, ``clientgo-v0.27``: an old client-go's tools/leaderelection with
  `resourcelock.New` and the lock type of the candidate (``endpoints``,
  ``endpointsleases``, ``leases``; tests/peers/clientgo_old).

A candidate reaches the apiserver directly, through a `Proxy` of its own that can cut it off
(`proxied=True`), or through a Toxiproxy proxy of its own (`toxiproxy=`, `peer.toxic`).

The harness reads every process's lines in a thread, sends signals, records every version
of the lock object the apiserver hands out (a watch as the admin), turns the event lines
into leadership intervals on the shared monotonic clock, and kills every process it started
when it is closed, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import httpx
import pytest
from harness.event_lines import Event, EventProcess

from trio_election._controlplane._binaries import (
    cache_dir,
    find_clientgo_candidate,
    find_old_clientgo_candidate,
)
from trio_election._controlplane._kubeconfig import write_kubeconfig
from trio_election._controlplane._processes import Reaper
from trio_election._kube_locks._records import record_from_annotation, record_from_lease_spec
from trio_election.testing import History, Interval

from ._proxy import Proxy

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping, Sequence
    from types import TracebackType

    from harness.toxiproxy import ToxicProxy, ToxiproxyClient

    from trio_election import LeaderRecord
    from trio_election.testing import ControlPlane

Kind = Literal["trio", "clientgo", "kubepy", "kasyncio", "clientgo-v0.23", "clientgo-v0.27"]
Resource = Literal["leases", "configmaps", "endpoints"]
LockType = Literal["leases", "configmaps", "endpoints", "endpointsleases"]
"""client-go's lock type names; ``endpointsleases`` writes both an Endpoints and a Lease."""

PEERS = Path(__file__).resolve().parent.parent / "peers"
CLIENTGO_SOURCE = PEERS / "clientgo"
OLD_CLIENTGO_SOURCE = PEERS / "clientgo_old"
VERBS = ("get", "create", "update", "patch", "watch", "list")
"""What a candidate's service account may do to the lock's resource."""

STARTUP_WITHIN = 30.0
"""How long a process may take to print `ready` (Python imports on a busy 2-core machine)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Whole seconds: the `kubernetes` Python clients cannot take anything else."""

    lease: int = 4
    renew: int = 3
    retry: int = 1

    def crash_bound(self, successor: Kind) -> float:
        """Loose upper bound on a takeover after the leader died without releasing.

        The successor may have seen the last renew one poll late and sees the expiry one
        poll late: lease + 2 polls + 1 s. client-go's followers poll every
        `retry * (1 + 1.2 * rand)`, so its polls count up to 2.2 retry periods.
        """
        poll = self.retry * (2.2 if successor.startswith("clientgo") else 1.0)
        return self.lease + 2 * poll + 1.0


@dataclass(frozen=True, slots=True)
class Version:
    """One version of the lock object, as the apiserver handed it to the watch."""

    time: float
    """When the harness received it (time.monotonic())."""
    type: str
    """ADDED, MODIFIED or DELETED."""
    raw: Any
    """The Lease's `spec`, or the annotation's text for a ConfigMap."""
    record: LeaderRecord | None
    """How this library reads it (None: unreadable)."""
    resource_version: str

    @property
    def holder(self) -> str | None:
        return None if self.record is None else self.record.holder_identity


class Peer(EventProcess):
    """One candidate process."""

    def __init__(
        self, kind: Kind, identity: str, args: list[str], log_path: Path, env: dict[str, str]
    ) -> None:
        self.kind: Kind = kind
        self.identity = identity
        self.log_path = log_path
        self.frozen: list[tuple[float, float | None]] = []
        """(SIGSTOP sent, SIGCONT sent) pairs: a stopped process runs no work."""
        self.proxy: Proxy | None = None
        """Its way to the apiserver, when started with `proxied=True`."""
        self.toxic: ToxicProxy | None = None
        """Its way to the apiserver, when started through Toxiproxy."""
        super().__init__(args, log=log_path, env=env, name=f"peer-{identity}")

    def __repr__(self) -> str:
        return f"<Peer {self.kind} {self.identity} pid={self.process.pid}>"

    def wait_for(
        self, kind: str, arg: str | None = None, *, since: float = 0.0, within: float
    ) -> Event:
        """The first `kind` event (with `arg`, if given) at or after `since`; fails the
        test after `within` seconds or when the process exits without it."""
        found = self.find(kind, arg, since=since, within=within)
        if found is not None:
            return found
        reason = "exited" if self.exited_at is not None else f"not within {within:g} s"
        what = kind if arg is None else f"{kind} {arg}"
        pytest.fail(f"{self}: no {what!r} event ({reason}).\n{self.describe()}", pytrace=False)

    def describe(self) -> str:
        with self._changed:
            lines = [f"  {e.time:.3f} {e.kind} {e.arg}" for e in self.events[-30:]]
        log = self.log_path.read_text(errors="replace").splitlines()[-30:]
        return "events:\n" + "\n".join(lines) + f"\nend of {self.log_path}:\n" + "\n".join(log)

    def send(self, signum: signal.Signals) -> float:
        """Send a signal; returns when it was sent (time.monotonic())."""
        sent = super().send(signum)
        if signum == signal.SIGSTOP:
            self.frozen.append((sent, None))
        elif signum == signal.SIGCONT and self.frozen and self.frozen[-1][1] is None:
            self.frozen[-1] = (self.frozen[-1][0], sent)
        return sent

    def wait_exit(self, within: float = 15.0) -> float:
        return self.wait_for("process-exit", within=within).time

    def intervals(self, now: float) -> list[Interval]:
        """Its terms as leader: from `started-leading` to `stopped-leading` (or its death),
        those still open ending at `now`; the time it spent stopped by SIGSTOP cut out."""
        terms: list[tuple[float, float]] = []
        start: float | None = None
        with self._changed:
            for event in self.events:
                if event.kind == "started-leading" and start is None:
                    start = event.time
                elif event.kind in ("stopped-leading", "process-exit") and start is not None:
                    terms.append((start, event.time))
                    start = None
        if start is not None:
            terms.append((start, now))
        pieces: list[Interval] = []
        for begin, end in terms:
            cuts = [(s, now if c is None else c) for s, c in self.frozen if s < end]
            at = begin
            for stopped, resumed in sorted(cuts):
                if stopped > at:
                    pieces.append(Interval(self.identity, at, min(stopped, end)))
                at = max(at, resumed)
            if at < end:
                pieces.append(Interval(self.identity, at, end))
        return pieces


class LockRecorder:
    """Every version of one lock object, from an admin watch, in a thread of its own."""

    def __init__(self, control_plane: ControlPlane, namespace: str, resource: Resource, name: str):
        self.versions: list[Version] = []
        self._resource: Resource = resource
        group = "/apis/coordination.k8s.io/v1" if resource == "leases" else "/api/v1"
        self._path = f"{group}/namespaces/{namespace}/{resource}"
        self._name = name
        self._client = control_plane.http_client()
        self._stopped = threading.Event()
        self._changed = threading.Condition()
        listed = self._client.get(self._path, params={"fieldSelector": f"metadata.name={name}"})
        listed.raise_for_status()
        self._version: str = listed.json()["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)
        self._thread.start()

    def _decode(self, obj: dict[str, Any]) -> tuple[Any, LeaderRecord | None]:
        if self._resource == "leases":
            spec = obj.get("spec")
            return spec, record_from_lease_spec(spec)
        annotations: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
        raw = annotations.get("control-plane.alpha.kubernetes.io/leader")
        return raw, record_from_annotation(raw)

    def _run(self) -> None:
        # the server ends each watch after a second, so that stopping never waits long
        while not self._stopped.is_set():
            params = {
                "watch": "1",
                "fieldSelector": f"metadata.name={self._name}",
                "resourceVersion": self._version,
                "timeoutSeconds": "1",
            }
            try:
                with self._client.stream("GET", self._path, params=params) as response:
                    for line in response.iter_lines():
                        if line:
                            self._note(json.loads(line))
            except (httpx.HTTPError, ValueError):
                if self._stopped.wait(0.2):
                    return

    def _note(self, event: dict[str, Any]) -> None:
        obj: dict[str, Any] = event["object"]
        if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
            return
        version: str = obj["metadata"]["resourceVersion"]
        raw, record = self._decode(obj)
        with self._changed:
            self._version = version
            self.versions.append(Version(time.monotonic(), event["type"], raw, record, version))
            self._changed.notify_all()

    def wait_for_holder(self, holder: str, *, since: float = 0.0, within: float) -> Version:
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for version in self.versions:
                    if version.holder == holder and version.time >= since:
                        return version
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the lock never named {holder!r} within {within:g} s")
                self._changed.wait(left)

    def wait_for_new_holder(self, old: str, *, since: float, within: float) -> Version:
        """The first version at or after `since` that names a holder other than `old`
        (and not the empty one of a release)."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for version in self.versions:
                    if version.time >= since and version.holder not in (None, "", old):
                        return version
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no holder took over from {old!r} within {within:g} s")
                self._changed.wait(left)

    def wait_for_renewals(
        self, holder: str, count: int, *, since: float = 0.0, within: float
    ) -> Version:
        """The version by which `holder` has written the lock `count` times at or after
        `since` while holding it (its acquisition counts when it is after `since`)."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                named = [v for v in self.versions if v.holder == holder and v.time >= since]
                if len(named) >= count:
                    return named[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"the lock named {holder!r} in {len(named)} versions, not {count}, "
                        f"within {within:g} s"
                    )
                self._changed.wait(left)

    def holders(self) -> list[Version]:
        """The versions that changed the holder (the first of each run of one holder)."""
        changes: list[Version] = []
        for version in self.versions:
            if not changes or version.holder != changes[-1].holder:
                changes.append(version)
        return changes

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._client.close()


@dataclass
class Fleet:
    """Candidates of any kind on one lock; use as a context manager (kills them all)."""

    control_plane: ControlPlane
    folder: Path
    resource: Resource = "leases"
    timing: Timing = field(default_factory=Timing)
    name: str = "interop"
    peers: list[Peer] = field(default_factory=list[Peer])
    proxies: list[Proxy] = field(default_factory=list[Proxy])
    rights: tuple[Resource, ...] = ()
    """Resources each candidate may use besides `resource` (e.g. both objects of a
    MultiLock, for a fleet that migrates from one lock to another)."""
    toxic_proxies: list[ToxicProxy] = field(default_factory=list["ToxicProxy"])
    recorders: dict[Resource, LockRecorder] = field(default_factory=dict[Resource, LockRecorder])
    """A recorder per resource watched: `resource`'s (also `recorder`) and `watch()`'s."""
    namespace: str = field(init=False)
    recorder: LockRecorder = field(init=False)
    reaper: Reaper = field(init=False)
    """Kills the candidates should this process die without closing the fleet."""

    def __post_init__(self) -> None:
        self.namespace = self.control_plane.create_namespace("interop")
        self.recorder = LockRecorder(self.control_plane, self.namespace, self.resource, self.name)
        self.recorders[self.resource] = self.recorder
        self.reaper = Reaper()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def lock(self) -> str:
        return f"{self.resource}/{self.namespace}/{self.name}"

    def lock_of(self, lock: LockType | None = None) -> str:
        """This library's name for the lock of this fleet, as `lock` type (default
        `resource`): ``<lock>/<namespace>/<name>``."""
        return f"{lock or self.resource}/{self.namespace}/{self.name}"

    def watch(self, resource: Resource) -> LockRecorder:
        """Record every version of the object of this name in `resource` too (the other
        object of a MultiLock); `recorders[resource]` from now on."""
        if resource not in self.recorders:
            self.recorders[resource] = LockRecorder(
                self.control_plane, self.namespace, resource, self.name
            )
        return self.recorders[resource]

    def start(
        self,
        kind: Kind,
        identity: str,
        *,
        proxied: bool = False,
        toxiproxy: ToxiproxyClient | None = None,
        lock: LockType | None = None,
        program: Path | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Peer:
        """Start a candidate with a service account of its own and wait until it is ready.

        `proxied`: it reaches the apiserver through a `Proxy` of its own (`peer.proxy`),
        which can cut it off. `toxiproxy`: through a Toxiproxy proxy of its own instead
        (`peer.toxic`), named `<namespace>.<identity>`. `lock`: the lock type it campaigns
        for (default: the fleet's `resource`). `program` runs instead of the `trio` kind's
        candidate script (same arguments, then `extra_args`). `env`: variables set for it
        (over the test's environment)."""
        resources = dict.fromkeys((self.resource, *self.rights))
        user = self.control_plane.user(
            identity, namespace=self.namespace, verbs=dict.fromkeys(resources, VERBS)
        )
        kubeconfig = user.kubeconfig
        proxy: Proxy | None = None
        toxic: ToxicProxy | None = None
        if proxied and toxiproxy is not None:
            raise ValueError("a candidate goes through one proxy: proxied or toxiproxy")
        if toxiproxy is not None:
            url = httpx.URL(self.control_plane.server)
            toxic = toxiproxy.create_proxy(
                f"{self.namespace}.{identity}", upstream=f"{url.host}:{url.port or 443}"
            )
            self.toxic_proxies.append(toxic)
            kubeconfig = write_kubeconfig(
                self.folder / f"{identity}.kubeconfig",
                server=f"https://{toxic.listen}",
                ca_pem=self.control_plane.ca_pem,
                user=identity,
                token=user.token,
                namespace=self.namespace,
            )
        if proxied:
            url = httpx.URL(self.control_plane.server)
            proxy = Proxy((url.host, url.port or 443))
            self.proxies.append(proxy)
            kubeconfig = write_kubeconfig(
                self.folder / f"{identity}.kubeconfig",
                server=proxy.address,
                ca_pem=self.control_plane.ca_pem,
                user=identity,
                token=user.token,
                namespace=self.namespace,
            )
        t = self.timing
        lock_type: LockType = lock or self.resource
        if kind == "trio":
            script = program or PEERS / "trio_candidate.py"
            args = [sys.executable, str(script), f"--lock={self.lock_of(lock_type)}"]
        elif kind in ("kubepy", "kasyncio"):
            args = [
                sys.executable,
                str(PEERS / f"{kind}_candidate.py"),
                f"--namespace={self.namespace}",
                f"--name={self.name}",
                f"--lock={lock_type}",
            ]
        elif kind == "clientgo":
            if lock_type != "leases":
                raise ValueError("the client-go candidate campaigns for Leases only")
            args = [
                str(clientgo_binary()),
                f"--namespace={self.namespace}",
                f"--name={self.name}",
            ]
        else:
            args = [
                str(old_clientgo_binary(kind.removeprefix("clientgo-"))),
                f"--namespace={self.namespace}",
                f"--name={self.name}",
                f"--lock={lock_type}",
            ]
        args += [
            f"--kubeconfig={kubeconfig}",
            f"--identity={identity}",
            f"--lease-duration={t.lease}",
            f"--renew-deadline={t.renew}",
            f"--retry-period={t.retry}",
        ]
        args += extra_args
        peer_env = _child_env() | dict(env or {})
        peer = Peer(kind, identity, args, self.folder / f"{identity}.log", peer_env)
        peer.proxy = proxy
        peer.toxic = toxic
        self.peers.append(peer)
        self.reaper.watch_group(peer.process.pid)
        peer.wait_for("ready", within=STARTUP_WITHIN)
        return peer

    @contextlib.contextmanager
    def frozen(self, *peers: Peer) -> Generator[None]:
        """SIGSTOP `peers` for the block (so that someone else is the successor)."""
        for peer in peers:
            peer.send(signal.SIGSTOP)
        try:
            yield
        finally:
            for peer in peers:
                peer.send(signal.SIGCONT)

    def leader(self) -> Peer | None:
        leading = [peer for peer in self.peers if peer.leading]
        assert len(leading) <= 1, f"two leaders at once: {leading}"
        return leading[0] if leading else None

    def history(self) -> History:
        now = time.monotonic()
        return History(intervals=[iv for peer in self.peers for iv in peer.intervals(now)])

    def kind_of(self, identity: str) -> Kind | None:
        for peer in self.peers:
            if peer.identity == identity:
                return peer.kind
        return None

    def close(self) -> None:
        for peer in self.peers:
            peer.kill()
        self.reaper.release()
        for proxy in self.proxies:
            proxy.close()
        for toxic in self.toxic_proxies:
            with contextlib.suppress(Exception):  # the server may be gone already
                toxic.delete()
        for recorder in self.recorders.values():
            recorder.close()


def clientgo_binary() -> Path:
    """The built client-go candidate; skips the test when it is missing (fails under CI)."""
    found = find_clientgo_candidate(CLIENTGO_SOURCE)
    if found is not None:
        return found
    message = (
        f"the client-go candidate is missing or older than {CLIENTGO_SOURCE} in "
        f"{cache_dir()}: run `python scripts/build_control_plane.py` (needs Go)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def old_clientgo_binary(release: str) -> Path:
    """The built old client-go candidate for `release` ("v0.23", "v0.27"); skips the test
    when it is missing (fails under CI), as `clientgo_binary`."""
    found = find_old_clientgo_candidate(OLD_CLIENTGO_SOURCE, release)
    if found is not None:
        return found
    message = (
        f"the client-go {release} candidate is missing or older than {OLD_CLIENTGO_SOURCE} "
        f"in {cache_dir()}: run `python scripts/build_control_plane.py` (needs Go)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _child_env() -> dict[str, str]:
    """No proxies, no KUBECONFIG: each candidate gets its own kubeconfig file."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
    return {key: value for key, value in os.environ.items() if key.lower() not in drop}
