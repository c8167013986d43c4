"""A task that runs beside its caller until it returns or the run ends: trio's system task,
an asyncio task of the running loop.

anyio has no such task: its tasks live in task groups, and a task group is bound to the
block that opened it. The shared watch (`._streams`) is started by whichever lock watches
first and must outlive it while others still read it, so it runs detached. It is cancelled
when it is stopped, or when the run ends (trio cancels its system tasks when the main task
returns; `asyncio.run` cancels the tasks left). It runs in a fresh `contextvars` context,
as a trio system task does, so that it carries nothing of the lock that started it.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING

import sniffio

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["spawn_detached"]

_running: set[asyncio.Task[None]] = set()
"""The detached asyncio tasks not yet done: the loop holds its tasks only weakly."""


def spawn_detached(run: Callable[[], Coroutine[object, object, None]], *, name: str) -> None:
    """Start ``run()`` in a task of its own, beside the caller; return at once.

    `run` must catch its own exceptions: under trio one that escapes crashes the run
    (`trio.TrioInternalError`), under asyncio the loop logs it. Raises `RuntimeError` when
    called outside trio and asyncio.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        import trio  # imported by trio programs only

        trio.lowlevel.spawn_system_task(run, name=name)
    elif library == "asyncio":
        task = asyncio.get_running_loop().create_task(
            run(), name=name, context=contextvars.Context()
        )
        _running.add(task)
        task.add_done_callback(_running.discard)
    else:
        raise RuntimeError(f"the shared watch runs under trio or asyncio, not {library}")
