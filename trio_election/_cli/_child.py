"""What `run` and `run --shards` share: the command as a child process, the runner's
signals, and the ``--http`` listeners.

A child is started with `start_command`, stopped with `terminate` (SIGTERM, SIGKILL after
the grace period, or at once after a second signal), and its return code read with
`exit_status` (128 + N when signal N ended it, as a shell reports it).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

import trio

from ._options import CommandError, UsageError, say

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from trio_election.kube import KubeClient

    from .._core._options import ElectionOptions
    from ._options import NamedLock

__all__ = [
    "Settings",
    "Stop",
    "check_command",
    "exit_status",
    "listen",
    "start_command",
    "terminate",
    "url",
]


@final
@dataclass(frozen=True, slots=True)
class Settings:
    """What `run` was asked to do, checked."""

    spec: str
    """The lock as given: ``<resource>/<namespace>/<name>`` or ``<resource>/<name>``."""
    lock: NamedLock
    command: list[str]
    options: ElectionOptions[KubeClient]
    grace: float
    again: bool
    http: tuple[str | None, int] | None
    http_text: str
    tolerance: float
    shards: int | None = None
    """The shard count of ``--shards`` (None: one election)."""


def check_command(program: str) -> None:
    """Raise `UsageError` unless `program` is an executable file or found on PATH."""
    if os.sep in program:
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise UsageError(f"cannot run {program!r}: it is not an executable file")
    elif shutil.which(program) is None:
        raise UsageError(f"command {program!r} not found on PATH")


@dataclass(slots=True)
class Stop:
    """What the runner's signals asked for."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    """Everything but a term's orderly end: cancelled by a signal that comes while not leading."""
    stopping: str = "stopping the command, then releasing the lock"
    """What the runner says it does on the first signal while leading."""
    signal: int | None = None
    requested: trio.Event = field(default_factory=trio.Event)
    """Set by the first signal: stop CMD, release, exit."""
    kill_now: trio.Event = field(default_factory=trio.Event)
    """Set by a second signal: SIGKILL CMD without waiting for the grace period."""
    leading: bool = False
    leave: trio.CancelScope | None = None
    """Cancelled by the first signal while leading, when set (``run --shards``: the scope of
    `Shards.serve`, whose cancellation leaves the group in order)."""

    async def watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.signal is None:
                self.signal = signum
                self.requested.set()
                if self.leading:
                    say(f"{name}: {self.stopping}")
                    if self.leave is not None:
                        self.leave.cancel(reason=name)
                else:
                    say(f"{name}: stopping")
                    self.scope.cancel(reason=name)
            else:
                say(f"{name} again: killing the command now")
                self.kill_now.set()


async def start_command(command: list[str], env: Mapping[str, str]) -> trio.Process:
    """CMD as a child process with `env` added to the runner's environment; its standard
    streams are the runner's. Raises `CommandError` (status 127) when it cannot start."""
    full = dict(os.environ)
    full.update(env)
    try:
        return await trio.lowlevel.open_process(command, env=full)
    except OSError as exc:
        message = f"cannot run {command[0]!r}: {exc.strerror or exc}"
        raise CommandError(message, 127) from None


async def terminate(
    process: trio.Process, grace: float, kill_now: trio.Event, what: str = "the command"
) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (or at once when `kill_now` is set);
    returns once `process` has exited."""
    if process.returncode is None:
        say(f"sending SIGTERM to {what} (pid {process.pid}); SIGKILL in {grace:g} s")
        process.send_signal(signal.SIGTERM)
    async with trio.open_nursery() as nursery:

        async def kill_later() -> None:
            with trio.move_on_after(grace):
                await kill_now.wait()
            if process.returncode is None:
                say(f"{what} (pid {process.pid}) is still running: SIGKILL")
                process.kill()

        nursery.start_soon(kill_later)
        await process.wait()
        nursery.cancel_scope.cancel()


def exit_status(returncode: int | None) -> int:
    assert returncode is not None
    return 128 - returncode if returncode < 0 else returncode


async def listen(address: tuple[str | None, int] | None, text: str) -> list[trio.SocketListener]:
    """The --http listeners, bound before the first request to the apiserver: a bad address
    or a port in use fails at once, and /healthz answers while the apiserver cannot be
    reached. Raises `UsageError` naming the address and the fix."""
    if address is None:
        return []
    host, port = address
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise UsageError(f"argument --http: {_listen_error(text, host, exc)}") from None


def _listen_error(text: str, host: str | None, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {text!r}: the host {host!r} is not an address "
            f"({exc.strerror}); give an IP address or name of this machine, e.g. "
            f"127.0.0.1:4040, or :4040 for every interface"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {text!r}: the address is already in use (another process "
            f"listens there); pick a free port, or port 0 for any"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {text!r}: {host!r} is not an address of this machine; give one "
            f"of its addresses, or :PORT for every interface"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {text!r}: permission denied (ports below 1024 need privileges); "
            f"pick a port of 1024 or above"
        )
    return f"cannot listen on {text!r}: {exc.strerror or exc}"


def url(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
