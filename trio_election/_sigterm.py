"""SIGTERM, the way Kubernetes stops a pod, turned into a cancellation.

`elect()`, `open_election()` and `LeaderElector.run()` register here while they run (unless
told not to). On SIGTERM every registered election is cancelled in its own task: the leader's
work unwinds, the lock is released, and the face raises `Terminated` (a `SystemExit` with
the status of a process killed by SIGTERM, 143), so a program written as in the README hands
over at once and exits as Kubernetes expects.

One handler serves every election of an event loop (a trio run or an asyncio loop): it is
installed when the first election registers and the previous handler is put back when the
last one leaves. A handler that the application installed before is called too; so is one
installed with asyncio's `loop.add_signal_handler()`, which asyncio delivers through its
wake-up file descriptor, beside the Python-level handler. Signal handlers can only be
installed from the main thread: when the loop runs in another thread nothing is installed
(logged once), and the application handles SIGTERM itself. SIGINT is left alone (trio and
`asyncio.run()` each turn it into `KeyboardInterrupt` their own way).
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, final

import anyio.lowlevel

from ._loop import call_soon_in_loop

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from types import FrameType

__all__ = ["SigtermWatch", "watch_sigterm"]

logger = logging.getLogger("trio_election")


@final
class SigtermWatch:
    """One election's registration: `received` turns True when SIGTERM arrived."""

    __slots__ = ("_on_signal", "received")

    def __init__(self, on_signal: Callable[[], None]) -> None:
        self._on_signal = on_signal
        self.received = False

    def fire(self) -> None:
        """Mark SIGTERM received and call `on_signal`, the first time only."""
        if not self.received:
            self.received = True
            self._on_signal()


@final
class _Handler:
    """The one SIGTERM handler of an event loop, and the elections it serves."""

    def __init__(self) -> None:
        self.watches: set[SigtermWatch] = set()
        self._soon = call_soon_in_loop()
        self._previous: signal.Handlers | Callable[[int, FrameType | None], object] | int | None
        self._previous = None

    def install(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)

    def uninstall(self) -> None:
        previous = self._previous
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # runs in the main thread between two bytecodes: only hand the work to the loop
        self._soon(self._deliver)
        previous = self._previous
        if callable(previous):
            previous(signum, frame)

    def _deliver(self) -> None:
        if self.watches:
            logger.info(
                "SIGTERM: stopping %d election(s): cancelling the leader's work, then releasing",
                len(self.watches),
            )
        for watch in list(self.watches):
            watch.fire()


_handler: anyio.lowlevel.RunVar[_Handler | None] = anyio.lowlevel.RunVar(
    "trio_election_sigterm", default=None
)
_warned_thread = False


@contextmanager
def watch_sigterm(on_signal: Callable[[], None]) -> Generator[SigtermWatch | None]:
    """Call `on_signal` (in this event loop) when SIGTERM arrives, while the block runs.

    Yields None, installing nothing, outside the main thread.
    """
    global _warned_thread
    if threading.current_thread() is not threading.main_thread():
        if not _warned_thread:
            _warned_thread = True
            logger.info(
                "the event loop does not run in the main thread: SIGTERM is left to the "
                "application "
                "(signal handlers can only be installed from the main thread)"
            )
        yield None
        return
    handler = _handler.get()
    if handler is None:
        handler = _Handler()
        handler.install()
        _handler.set(handler)
    watch = SigtermWatch(on_signal)
    handler.watches.add(watch)
    try:
        yield watch
    finally:
        handler.watches.discard(watch)
        if not handler.watches:
            handler.uninstall()
            _handler.set(None)
