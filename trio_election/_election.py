"""The trio-native face: `elect()` and `open_election()`."""

from __future__ import annotations

from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

import trio

from ._core._clock import Clock, TrioClock
from ._core._engine import Engine
from ._core._exceptions import ConfigError, LeadershipLost, Terminated
from ._core._lock import LockHandle
from ._core._memory import MemoryLock
from ._core._timing import Timing, check_identity, default_identity
from ._sigterm import watch_sigterm

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator

    from ._core._leadership import Leadership
    from ._core._metering import Statistics
    from ._kube import KubeClient
    from ._kube_locks._events import EventRecorder
    from ._sigterm import SigtermWatch

__all__ = ["Election", "elect", "open_election"]


@runtime_checkable
class _NeedsClient(Protocol):
    """A Kubernetes lock: a handle that is bound to a client per candidate."""

    @property
    def client(self) -> KubeClient | None: ...

    def with_client(self, client: KubeClient) -> LockHandle: ...


LockSpec = str | LockHandle | MemoryLock
"""What `elect()` and `open_election()` accept as `lock`."""


@asynccontextmanager
async def open_lock_handle(lock: object, client: KubeClient | None) -> AsyncGenerator[LockHandle]:
    """One candidate's handle for `lock`, opening a Kubernetes client if one is needed."""
    if isinstance(lock, MemoryLock):
        yield lock.handle()
        return
    if isinstance(lock, (str, _NeedsClient)):
        given = client if client is not None or isinstance(lock, str) else lock.client
        if given is not None:
            yield _bind(lock, given)
            return
        from ._kube import KubeClient, KubeConfig

        async with KubeClient(KubeConfig.load()) as own:
            yield _bind(lock, own)
        return
    if isinstance(lock, LockHandle):
        yield lock
        return
    raise ConfigError(
        f"lock must be a string like 'leases/<namespace>/<name>', a lock object "
        f"(LeaseLock, EndpointsLock, ConfigMapLock, MultiLock, MemoryLock), or a lock "
        f"handle; got {lock!r}"
    )


def _bind(lock: str | _NeedsClient, client: KubeClient) -> LockHandle:
    if isinstance(lock, str):
        from ._kube_locks import lock_from_string

        return lock_from_string(lock, client)
    return lock.with_client(client)


@final
class Election:
    """A candidate's participation in one election, from `open_election()`.

    It follows the lock while it is open (`leader`, `changes()`), and campaigns only while a
    task is inside `leading()`.
    """

    def __init__(
        self, engine: Engine, nursery: trio.Nursery, events: EventRecorder | None = None
    ) -> None:
        self._engine = engine
        self._nursery = nursery
        self._events = events
        self._in_leading = False

    def __repr__(self) -> str:
        return (
            f"<Election {self._engine.identity!r} on {self._engine.handle.description} "
            f"leader={self.leader!r}>"
        )

    @property
    def identity(self) -> str:
        return self._engine.identity

    @property
    def lock(self) -> str:
        """The lock's description, e.g. ``leases/default/my-app``."""
        return self._engine.handle.description

    @property
    def leader(self) -> str | None:
        """The holder's identity; None when free; `UNKNOWN_HOLDER` when unreadable."""
        return self._engine.leader

    @property
    def is_leader(self) -> bool:
        """True only inside a live term (before its deadline has fired)."""
        return self._engine.is_leader

    @property
    def timing(self) -> Timing:
        """The election's lease duration, renew deadline and retry period (seconds)."""
        return self._engine.timing

    @property
    def leadership(self) -> Leadership | None:
        """The current term, if any."""
        return self._engine.term

    def statistics(self) -> Statistics:
        return self._engine.statistics()

    async def changes(self) -> AsyncGenerator[str | None]:
        """Yield the current holder, then each change of holder.

        A slow reader gets the latest value: changes that came and went while it was busy
        are skipped. Raises an error that retrying cannot cure (e.g. a missing permission).
        """
        engine = self._engine
        engine.raise_fatal()
        seq = engine.leader_seq
        last = engine.leader
        yield last
        while True:
            while engine.leader_seq == seq:
                await engine.wait_changed()
            seq = engine.leader_seq
            if engine.leader != last:
                last = engine.leader
                yield last

    @asynccontextmanager
    async def leading(self) -> AsyncGenerator[Leadership]:
        """Campaign until leader, then run the block as the leader's work.

        Blocks until the lock is ours. The block runs in `leadership.cancel_scope`, which is
        cancelled when the lease can no longer be held safely; then `leadership.lost` is
        True. Leaving the block releases the lock (when `release_on_exit`), whether it
        returned, raised or was cancelled; its exception comes out unchanged. One task at a
        time may be inside `leading()`.
        """
        if self._in_leading:
            raise RuntimeError(
                "another task is already inside leading() of this election; "
                "open a second election for a second candidate"
            )
        self._in_leading = True
        engine = self._engine
        try:
            term = await engine.acquire()
            renewing = trio.CancelScope()

            async def renew() -> None:
                with renewing:
                    await engine.renew_loop(term)

            self._nursery.start_soon(renew)
            if self._events is not None:
                self._nursery.start_soon(self._events.became_leader)
            try:
                with term.cancel_scope:
                    yield term
            finally:
                renewing.cancel()
                engine.end_term(term)
                if engine.release_on_exit:
                    await engine.release(term)
                if self._events is not None:
                    span = engine.timing.retry_period
                    with trio.move_on_after(span, shield=True):
                        await self._events.stopped_leading()
        finally:
            self._in_leading = False


def _resolve(
    identity: str | None,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
) -> tuple[str, Timing]:
    timing = Timing.validate(lease_duration, renew_deadline, retry_period)
    return (default_identity() if identity is None else check_identity(identity)), timing


@asynccontextmanager
async def open_election(
    lock: LockSpec,
    *,
    identity: str | None = None,
    client: KubeClient | None = None,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
    release_on_exit: bool = True,
    stop_on_sigterm: bool = True,
    events: str | None = None,
    clock: Clock | None = None,
    on_leader_change: Callable[[str | None], None] | None = None,
) -> AsyncGenerator[Election]:
    """Take part in an election: follow the lock, and lead when asked (`leading()`).

    `lock` is a lock object or a string ``"<resource>/<namespace>/<name>"``
    (``"<resource>/<name>"`` takes the namespace of the Kubernetes config). With a
    Kubernetes lock and no `client`, a client is opened from `KubeConfig.load()` and closed
    on exit. The default identity is ``<hostname>_<uuid4>``. `clock` (default: trio's)
    is for tests; `on_leader_change` is called synchronously with each new holder.

    SIGTERM (`stop_on_sigterm`, when trio runs in the main thread) cancels the block: the
    leader's work unwinds, the lock is released, and `Terminated` (a `SystemExit` with status
    143) is raised, whatever the block did with the cancellation.

    `events` (a component name, e.g. ``"my-controller"``) records client-go's Kubernetes
    Events on a Kubernetes lock object: ``"<identity> became leader"`` and ``"<identity>
    stopped leading"``, reason ``LeaderElection``. Best effort: a missing ``create events``
    right is logged once, never raised.

    Blocks on entry until the lock has been read once. Raises `ConfigError` for invalid
    arguments, and errors that retrying cannot cure (a missing permission) unwrapped.
    An exception of the block comes out unchanged.
    """
    ident, timing = _resolve(identity, lease_duration, renew_deadline, retry_period)
    async with open_lock_handle(lock, client) as handle:
        engine = Engine(
            handle,
            identity=ident,
            timing=timing,
            clock=TrioClock() if clock is None else clock,
            release_on_exit=release_on_exit,
            on_leader_change=on_leader_change,
        )
        raised: BaseException | None = None
        with _sigterm_scope(stop_on_sigterm) as (scope, watch), scope:
            await engine.first_read()
            recorder = None
            if events is not None:
                from ._kube_locks._events import event_recorder

                recorder = event_recorder(handle, component=events, identity=ident)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(engine.run_follower)
                try:
                    yield Election(engine, nursery, recorder)
                except BaseException as exc:  # re-raised below, outside the nursery, unwrapped
                    raised = exc
                finally:
                    nursery.cancel_scope.cancel()
        if watch is not None and watch.received:
            raise Terminated from raised
        if raised is not None:
            raise raised


@contextmanager
def _sigterm_scope(
    enabled: bool,
) -> Generator[tuple[trio.CancelScope, SigtermWatch | None]]:
    """A cancel scope that SIGTERM cancels (while `enabled`), and the registration."""
    scope = trio.CancelScope()
    if not enabled:
        yield scope, None
        return
    with watch_sigterm(lambda: scope.cancel(reason="SIGTERM")) as watch:
        yield scope, watch


@asynccontextmanager
async def elect(
    lock: LockSpec,
    *,
    identity: str | None = None,
    client: KubeClient | None = None,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
    release_on_exit: bool = True,
    stop_on_sigterm: bool = True,
    events: str | None = None,
    clock: Clock | None = None,
) -> AsyncGenerator[Leadership]:
    """Wait until leader, then run the block as the leader's work; one term only.

    The block runs in a cancel scope that is cancelled when the lease can no longer be held
    safely (at the latest `renew_deadline` after the last successful renew). When the block
    ends the lock is released (`release_on_exit`). Raises:

    - the block's own exception, unchanged (not in an ExceptionGroup), after the release;
    - `LeadershipLost` after the block has unwound whenever the term ended by loss, even
      if the block caught the cancellation;
    - `Terminated` (a `SystemExit`, status 143) after a SIGTERM cancelled the block and the
      lock was released (`stop_on_sigterm`, see `open_election`);
    - `ConfigError` for invalid arguments; errors that retrying cannot cure, unwrapped.
    """
    async with (
        open_election(
            lock,
            identity=identity,
            client=client,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            release_on_exit=release_on_exit,
            stop_on_sigterm=stop_on_sigterm,
            events=events,
            clock=clock,
        ) as election,
        election.leading() as leadership,
    ):
        yield leadership
    if leadership.lost:
        raise LeadershipLost(
            f"{leadership.identity} lost {leadership.lock} (term {leadership.term}): "
            f"{leadership.reason}"
        ) from election._engine.fatal
