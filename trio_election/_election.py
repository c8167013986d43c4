"""The face of the election: `elect()` and `open_election()`, over the engine.

What the `lock`, `client` and `events` arguments become (a lock handle bound to a
Kubernetes client, a recorder of Kubernetes Events) is `_binding`'s business; the options
themselves are defined once, in `_core._options`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, final

import anyio
import anyio.abc

from ._async_with import async_with_only
from ._binding import LockSpec, check_client, open_lock_handle, recorder_for
from ._core._campaigns import campaigning, registry
from ._core._clock import LoopClock
from ._core._engine import Engine
from ._core._exceptions import LeadershipLost, Terminated
from ._core._options import ElectionOptions
from ._core._timing import Timing, check_identity, default_identity
from ._loop import require_event_loop
from ._sigterm import watch_sigterm

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator

    from ._binding import EventRecorder
    from ._core._clock import ElectionClock
    from ._core._leadership import Leadership
    from ._core._metering import Statistics
    from ._kube import KubeClient
    from ._sigterm import SigtermWatch

__all__ = [
    "Election",
    "LockSpec",
    "elect",
    "open_election",
    "open_election_engine",
    "open_election_with",
    "sigterm_scope",
]


@final
class Election:
    """A candidate's participation in one election, from `open_election()`.

    It follows the lock while it is open (`leader`, `changes()`), and campaigns only while a
    task is inside `leading()`.
    """

    def __init__(
        self, engine: Engine, nursery: anyio.abc.TaskGroup, events: EventRecorder | None = None
    ) -> None:
        self._engine = engine
        self._nursery = nursery
        self._events = events
        self._in_leading = False
        self._closed = False

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
        An iteration still running when the `open_election()` block ends stops there (the
        ``async for`` loop ends); calling `changes()` after the block has ended raises
        `RuntimeError`.
        """
        self._check_open("changes()")
        engine = self._engine
        engine.raise_fatal()
        seq = engine.leader_seq
        last = engine.leader
        yield last
        while True:
            while engine.leader_seq == seq:
                if self._closed:
                    return
                await engine.wait_changed()
            if self._closed:
                return
            seq = engine.leader_seq
            if engine.leader != last:
                last = engine.leader
                yield last

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"election.{call} was called after the open_election() block of "
                f"{self._engine.identity!r} on {self.lock} ended: the election is closed; "
                f"call it inside `async with open_election(...) as election:`"
            )

    def _close(self) -> None:
        """Mark the election as ended (its `open_election()` block has exited) and wake the
        waiters of `changes()`; called by the block's owner (`_open`)."""
        self._closed = True
        self._engine.wake()

    @async_with_only("election.leading")
    @asynccontextmanager
    async def leading(self) -> AsyncGenerator[Leadership]:
        """Campaign until leader, then run the block as the leader's work.

        Blocks until the lock is ours. The block runs in `leadership.cancel_scope`, which is
        cancelled when the lease can no longer be held safely; then `leadership.lost` is
        True. Leaving the block releases the lock (when `release_on_exit`), whether it
        returned, raised or was cancelled; its exception comes out unchanged. One task at a
        time may be inside `leading()`; `RuntimeError` after the `open_election()` block ended.
        """
        self._check_open("leading()")
        if self._in_leading:
            raise RuntimeError(
                "another task is already inside leading() of this election; "
                "open a second election for a second candidate"
            )
        self._in_leading = True
        engine = self._engine
        try:
            with campaigning(engine.lock_key, engine):
                term = await engine.acquire()
                renewing = anyio.CancelScope()

                async def renew() -> None:
                    with renewing:
                        await engine.renew_loop(term)

                self._nursery.start_soon(renew)
                if self._events is not None:
                    self._nursery.start_soon(self._events.became_leader)
                try:
                    with term.cancel_scope:
                        yield term.leadership
                finally:
                    renewing.cancel()
                    engine.end_term(term)
                    if engine.release_on_exit:
                        await engine.release(term)
                    if self._events is not None:
                        span = engine.timing.retry_period
                        with anyio.move_on_after(span, shield=True):
                            await self._events.stopped_leading()
        finally:
            self._in_leading = False


@async_with_only("open_election")
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
    clock: ElectionClock | None = None,
    on_leader_change: Callable[[str | None], None] | None = None,
) -> AsyncGenerator[Election]:
    """Take part in an election: follow the lock, and lead when asked (`leading()`).

    `lock` is a lock object or a string ``"<resource>/<namespace>/<name>"``
    (``"<resource>/<name>"`` takes the namespace of the Kubernetes config). With a
    Kubernetes lock and no `client`, a client is opened from `KubeConfig.load()` and closed
    on exit. The default identity is ``<hostname>_<uuid4>``. `clock` (default: the event loop's)
    is for tests; `on_leader_change` is called synchronously with each new holder.

    SIGTERM (`stop_on_sigterm`, when the event loop runs in the main thread) cancels the block: the
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
    options: ElectionOptions[KubeClient] = ElectionOptions(
        identity=identity,
        client=client,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        release_on_exit=release_on_exit,
        stop_on_sigterm=stop_on_sigterm,
        events=events,
        clock=clock,
        on_leader_change=on_leader_change,
    )
    async with open_election_with(lock, options) as election:
        yield election


@asynccontextmanager
async def open_election_with(
    lock: LockSpec, options: ElectionOptions[KubeClient]
) -> AsyncGenerator[Election]:
    """`open_election(lock, **options)`, for the faces that hold the options as one value."""
    async with _open(lock, options) as (election, _):
        yield election


@asynccontextmanager
async def open_election_engine(
    lock: LockSpec, options: ElectionOptions[KubeClient]
) -> AsyncGenerator[tuple[Election, Engine]]:
    """`open_election_with`, and the engine too, for the faces built on this one."""
    async with _open(lock, options) as opened:
        yield opened


@asynccontextmanager
async def _open(
    lock: LockSpec, options: ElectionOptions[KubeClient]
) -> AsyncGenerator[tuple[Election, Engine]]:
    """The election and its engine: what every face opens (see `open_election()`)."""
    require_event_loop()
    check_client(options.client)
    timing = Timing.validate(options.lease_duration, options.renew_deadline, options.retry_period)
    identity = default_identity() if options.identity is None else check_identity(options.identity)
    async with open_lock_handle(lock, options.client) as handle:
        engine = Engine(
            handle,
            identity=identity,
            timing=timing,
            clock=LoopClock() if options.clock is None else options.clock,
            release_on_exit=options.release_on_exit,
            on_leader_change=options.on_leader_change,
        )
        raised: BaseException | None = None
        with (
            registry.joined(engine.lock_key, engine),
            sigterm_scope(options.stop_on_sigterm) as (scope, watch),
            scope,
        ):
            await engine.first_read()
            recorder = recorder_for(handle, options.events, identity)
            async with anyio.create_task_group() as nursery:
                nursery.start_soon(engine.run_follower)
                election = Election(engine, nursery, recorder)
                try:
                    yield election, engine
                except BaseException as exc:  # re-raised below, outside the nursery, unwrapped
                    raised = exc
                finally:
                    election._close()  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
                    nursery.cancel_scope.cancel()
        if watch is not None and watch.received:
            raise Terminated from raised
        if raised is not None:
            raise raised


@contextmanager
def sigterm_scope(
    enabled: bool,
) -> Generator[tuple[anyio.CancelScope, SigtermWatch | None]]:
    """A cancel scope that SIGTERM cancels (while `enabled`), and the registration."""
    scope = anyio.CancelScope()
    if not enabled:
        yield scope, None
        return
    with watch_sigterm(lambda: scope.cancel(reason="SIGTERM")) as watch:
        yield scope, watch


@async_with_only("elect")
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
    clock: ElectionClock | None = None,
    on_leader_change: Callable[[str | None], None] | None = None,
) -> AsyncGenerator[Leadership]:
    """Wait until leader, then run the block as the leader's work; one term only.

    The options are those of `open_election()`. `on_leader_change` sees every holder from
    entry on: the ones before this candidate leads, this candidate, and whoever follows
    while the block unwinds.

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
    options: ElectionOptions[KubeClient] = ElectionOptions(
        identity=identity,
        client=client,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        release_on_exit=release_on_exit,
        stop_on_sigterm=stop_on_sigterm,
        events=events,
        clock=clock,
        on_leader_change=on_leader_change,
    )
    async with _open(lock, options) as (election, engine), election.leading() as leadership:
        yield leadership
    if leadership.lost:
        raise LeadershipLost(
            f"{leadership.identity} lost {leadership.lock} (term {leadership.term}): "
            f"{leadership.reason}"
        ) from engine.fatal
