"""Which event loop runs: trio's or asyncio's (the library runs on either, through anyio).

Most of the library never asks: anyio answers for it. What anyio has no word for is handing
a call to the loop from a signal handler, without waiting; and a clear error where no loop
runs at all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NO_EVENT_LOOP", "call_soon_in_loop", "require_event_loop"]

NO_EVENT_LOOP = (
    "trio_election needs a running event loop: use it from async code run by trio.run(main) "
    "or asyncio.run(main())"
)


def _trio_runs() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def require_event_loop() -> None:
    """Raise `RuntimeError` (one line saying what to do) unless trio or asyncio runs here."""
    if not _trio_runs() and _asyncio_loop() is None:
        raise RuntimeError(NO_EVENT_LOOP)


def call_soon_in_loop() -> Callable[[Callable[[], object]], None]:
    """A function that schedules a call in the running event loop, from any thread or a
    signal handler, without waiting: trio's `run_sync_soon`, asyncio's
    `call_soon_threadsafe`. Raises `RuntimeError` where no loop runs."""
    if _trio_runs():
        return trio.lowlevel.current_trio_token().run_sync_soon
    loop = _asyncio_loop()
    if loop is None:
        raise RuntimeError(NO_EVENT_LOOP)

    def soon(fn: Callable[[], object]) -> None:
        loop.call_soon_threadsafe(fn)

    return soon
