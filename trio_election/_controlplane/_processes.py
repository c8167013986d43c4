"""Child processes in their own process groups, free loopback ports, and waiting for them."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "PortInUseError",
    "ProcessGroup",
    "Reaper",
    "StartupError",
    "check_port_free",
    "free_port",
    "wait_for",
]


class StartupError(RuntimeError):
    """A control-plane process did not come up; the message carries the end of its log."""


class PortInUseError(StartupError):
    """A port a control-plane process must listen on again is held by another process."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int, *, what: str) -> None:
    """Raise `PortInUseError` if something else holds 127.0.0.1:`port`.

    Bound with SO_REUSEADDR, as Go's listeners are: connections of an earlier run in
    TIME_WAIT do not count, a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"port {port} ({what}) is in use by another process; it must be restarted on "
                "the same port (clients keep its address), so free the port, or start a new "
                "ControlPlane instead"
            ) from None


def wait_for(
    what: str, ready: Callable[[], bool], *, within: float, alive: Callable[[], None]
) -> None:
    """Poll ready() until it is true; alive() raises when waiting is pointless."""
    deadline = time.monotonic() + within
    delay = 0.02
    while True:
        alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise StartupError(f"{what} not ready within {within:g} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@final
@dataclass(eq=False)
class ProcessGroup:
    """A process started as the leader of a new process group, logging to a file."""

    name: str
    args: Sequence[str]
    log_path: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)
    _paused: bool = field(default=False, init=False)

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start the process; again after `stop()`, with the same arguments and log file."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._log = self.log_path.open("ab")
        if self._log.tell() > 0:  # a restart: mark where the new run begins
            self._log.write(f"--- {self.name} started again ---\n".encode())
            self._log.flush()
        self._paused = False
        self._process = subprocess.Popen(
            list(self.args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children
            env=env,
        )

    @property
    def pid(self) -> int | None:
        """The leader's process id (also the group's id) while started, else None."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Started and not exited (a paused process is running)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    def pause(self) -> None:
        """SIGSTOP the whole group: it keeps its sockets, but answers nothing."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT the whole group; harmless when not paused."""
        self._signal_group(signal.SIGCONT)
        self._paused = False

    def _signal_group(self, signum: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        assert self._process is not None
        os.killpg(self._process.pid, signum)

    def check_alive(self) -> None:
        """Raise StartupError (with the log's tail) if the process has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise StartupError(
                f"{self.name} exited with status {self._process.returncode}; "
                f"end of {self.log_path}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL it after `grace` seconds; idempotent. A paused
        group gets SIGCONT right after SIGTERM, so that it can act on it."""
        process, self._process = self._process, None
        self._paused = False
        if process is not None:
            pgid = process.pid  # the leader of its own session and group
            for signum in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
            # the leader is gone (or stuck): nothing of the group may outlive us
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@final
class Reaper:
    """The owner's side of `_reaper.py`: what it is told is cleaned up if we die first."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("_reaper.py")
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-I", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # neither Ctrl-C nor our group's signals reach it
            text=True,
        )

    def _tell(self, line: str) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()

    def watch_group(self, pgid: int) -> None:
        self._tell(f"group {pgid}")

    def forget_group(self, pgid: int) -> None:
        """We stopped that group ourselves: its id may be reused, never kill it later."""
        self._tell(f"forget {pgid}")

    def watch_path(self, path: Path) -> None:
        self._tell(f"path {path}")

    def release(self) -> None:
        """We cleaned up ourselves: let it exit without doing anything; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(BrokenPipeError):
            assert process.stdin is not None
            process.stdin.write("release\n")
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
