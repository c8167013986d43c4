"""client-go's leaderelection API in Python: `LeaderElector`, `ElectionConfig`, `LeaderCallbacks`.

A thin face over the same engine as `open_election()`; see docs/client-go-api.md for the
table of client-go's names and their Python counterparts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

import anyio

from ._core._exceptions import ConfigError
from ._core._options import ElectionOptions, option_specs
from ._core._timing import Timing, check_identity
from ._election import Election, open_election_engine
from ._kube_locks._spec import check_lock_string

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._binding import LockSpec
    from ._core._clock import ElectionClock
    from ._core._engine import Engine
    from ._core._leadership import Leadership
    from ._kube import KubeClient

__all__ = ["ElectionConfig", "LeaderCallbacks", "LeaderElector", "config_options", "run_or_die"]

logger = logging.getLogger("trio_election")


@final
@dataclass(frozen=True, slots=True)
class LeaderCallbacks:
    """What to do as the election goes (client-go's `LeaderCallbacks`).

    - `on_started_leading(leadership)`: an `async` function, required. It is the leader's
      work and runs inside `leadership.cancel_scope` (the form client-go's `ctx` takes here):
      cancelled when the lease can no longer be held. When it returns or raises, the term
      ends and the lock is released.
    - `on_stopped_leading()`: called once after a term ends, for whatever reason; never
      when this candidate did not lead. Sync or async.
    - `on_new_leader(identity)`: called with each newly observed holder ("" when free),
      including the first; calls are delivered in order, one at a time. Sync or async.
    """

    on_started_leading: Callable[[Leadership], Awaitable[object]]
    on_stopped_leading: Callable[[], object] | None = None
    on_new_leader: Callable[[str], object] | None = None


@final
@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """client-go's `LeaderElectionConfig`. Durations are seconds (floats).

    The fields besides `lock` and `callbacks` are the options of `open_election()`, all but
    `on_leader_change` (`callbacks.on_new_leader` plays its part): SIGTERM cancels
    `on_started_leading`, releases the lock, and `run()` raises `Terminated` (status 143);
    `events` names the component that records Kubernetes Events.
    """

    lock: LockSpec
    identity: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    callbacks: LeaderCallbacks | None = None
    release_on_exit: bool = True
    stop_on_sigterm: bool = True
    events: str | None = None
    client: KubeClient | None = None
    clock: ElectionClock | None = None


def config_options(config: ElectionConfig) -> dict[str, Any]:
    """The options that `config` sets, by name (every option that `ElectionConfig` has)."""
    return {spec.name: getattr(config, spec.name) for spec in option_specs() if spec.config}


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return inspect.iscoroutinefunction(call)


async def _call(fn: Callable[..., object], *args: object) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


@final
class LeaderElector:
    """A leader election client (client-go's `LeaderElector`; `NewLeaderElector` is
    the constructor). Raises `ConfigError` if the configuration breaks a rule.

    `run()` is one-shot, as in client-go: it campaigns, leads one term, and returns when the
    term ends. To lead many terms, use `open_election()`.
    """

    def __init__(self, config: ElectionConfig) -> None:
        Timing.validate(config.lease_duration, config.renew_deadline, config.retry_period)
        if config.identity is not None:
            check_identity(config.identity)
        if isinstance(config.lock, str):
            check_lock_string(config.lock)
        callbacks = config.callbacks
        if callbacks is None or callbacks.on_started_leading is None:  # pyright: ignore[reportUnnecessaryComparison]
            raise ConfigError("callbacks.on_started_leading is required (an async function)")
        if not _is_async_callable(callbacks.on_started_leading):
            raise ConfigError(
                f"callbacks.on_started_leading must be an async function (async def): the "
                f"leader's work has to be cancellable when the lease is lost; got "
                f"{callbacks.on_started_leading!r}"
            )
        self.config = config
        self._callbacks = callbacks
        self._election: Election | None = None
        self._ran = False
        self._started = anyio.Event()
        """Set once on_started_leading has been called (or the run is ending)."""

    def is_leader(self) -> bool:
        """True only while this client leads a live term."""
        return self._election is not None and self._election.is_leader

    def get_leader(self) -> str:
        """The last observed leader's identity, "" if none was observed yet."""
        if self._election is None:
            return ""
        return self._election.leader or ""

    async def run(self) -> None:
        """Campaign, lead one term, and return when it ends.

        Returns after `on_stopped_leading` when the term ended (by loss or because
        `on_started_leading` returned). An exception of `on_started_leading` comes out,
        after the release and `on_stopped_leading`. On cancellation the lock is released and
        the cancellation goes on; on SIGTERM, `Terminated` comes out after the release
        (`config.stop_on_sigterm`). Errors that retrying cannot cure come out unwrapped.
        Before returning, the `on_new_leader` calls already due are delivered.
        """
        if self._ran:
            raise RuntimeError(
                "LeaderElector.run() is one-shot; make a new LeaderElector, or use "
                "open_election() to lead many terms"
            )
        self._ran = True
        config = self.config
        callbacks = self._callbacks
        send, receive = anyio.create_memory_object_stream[tuple[str, bool]](math.inf)
        engines: list[Engine] = []

        def on_leader_change(holder: str | None) -> None:
            if callbacks.on_new_leader is not None:
                # our own write: on_new_leader waits until on_started_leading has been called
                ours = bool(engines) and engines[0].current_is_ours()
                with contextlib.suppress(anyio.ClosedResourceError):
                    send.send_nowait((holder or "", ours))

        given: ElectionOptions[KubeClient] = ElectionOptions(on_leader_change=on_leader_change)
        options = dataclasses.replace(given, **config_options(config))
        with send, receive:
            async with open_election_engine(config.lock, options) as (election, engine):
                engines.append(engine)
                self._election = election
                raised: BaseException | None = None
                async with anyio.create_task_group() as nursery:
                    nursery.start_soon(self._deliver, receive)
                    try:
                        await self._lead(election)
                    except BaseException as exc:  # re-raised below, outside the group, unwrapped
                        raised = exc
                    finally:
                        self._started.set()  # nothing waits for a term that did not begin
                        send.close()  # the deliveries already queued still go out, in order
                if raised is not None:
                    raise raised

    async def _lead(self, election: Election) -> None:
        callbacks = self._callbacks
        led = False
        try:
            async with election.leading() as leadership:
                led = True
                self._started.set()  # on_new_leader(us) runs once this has begun
                await callbacks.on_started_leading(leadership)
        finally:
            if led and callbacks.on_stopped_leading is not None:
                await _call(callbacks.on_stopped_leading)

    async def _deliver(self, receive: MemoryObjectReceiveStream[tuple[str, bool]]) -> None:
        callback = self._callbacks.on_new_leader
        async for identity, ours in receive:
            if callback is None:
                continue
            if ours:
                await self._started.wait()
            try:
                await _call(callback, identity)
            except Exception:
                logger.exception("on_new_leader(%r) raised", identity)


async def run_or_die(config: ElectionConfig) -> None:
    """Validate `config` and run one election (client-go's `RunOrDie`).

    Raises `ConfigError` for a configuration that breaks a rule (client-go panics).
    """
    await LeaderElector(config).run()
