"""A candidate process that prints what happens to it, one line per event.

The line is ``<CLOCK_MONOTONIC seconds> <event> <JSON string>`` (every candidate of the
interop tests and the benchmarks prints it: this library's, client-go's and the `kubernetes`
Python client's). The harness reads them in a thread as they come; the clock is the one
`time.monotonic()` reads here, so that the events of several processes compare.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Event", "EventProcess"]


@dataclass(frozen=True, slots=True)
class Event:
    time: float
    """CLOCK_MONOTONIC seconds, as the process printed it."""
    kind: str
    """``started-leading``, ``stopped-leading``, ...; ``unparsed`` for a line that is not
    an event, and ``process-exit`` (the exit status as its argument) at the end."""
    arg: str


class EventProcess:
    """A process in a session of its own, its stdout's events in `events` as it prints
    them, its stderr appended to `log`; with `stdin`, `tell()` writes lines to its stdin."""

    def __init__(
        self,
        args: list[str],
        *,
        log: Path,
        env: dict[str, str],
        name: str,
        stdin: bool = False,
    ) -> None:
        self.events: list[Event] = []
        self.started_at = time.monotonic()
        self.exited_at: float | None = None
        self._changed = threading.Condition()
        self._log: IO[bytes] = log.open("ab")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            when, _, rest = line.partition(" ")
            kind, _, arg = rest.partition(" ")
            try:
                event = Event(float(when), kind, json.loads(arg) if arg else "")
            except ValueError:
                event = Event(time.monotonic(), "unparsed", line)
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        self.process.wait()
        with self._changed:
            self.exited_at = time.monotonic()
            self.events.append(Event(self.exited_at, "process-exit", str(self.process.returncode)))
            self._changed.notify_all()

    def find(
        self,
        kind: str,
        arg: str | None = None,
        *,
        since: float = 0.0,
        within: float,
        count: int = 1,
    ) -> Event | None:
        """The `count`-th `kind` event (with `arg`, if given) at or after `since`, waiting
        up to `within` seconds for it; None if it did not come, or the process exited."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                found = [
                    e
                    for e in self.events
                    if e.kind == kind and e.time >= since and arg in (None, e.arg)
                ]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.exited_at is not None:
                    return None
                self._changed.wait(left)

    def count(self, kind: str) -> int:
        with self._changed:
            return sum(1 for e in self.events if e.kind == kind)

    @property
    def leading(self) -> bool:
        """Started leading and has not stopped (nor exited) since."""
        with self._changed:
            state = False
            for event in self.events:
                if event.kind == "started-leading":
                    state = True
                elif event.kind in ("stopped-leading", "process-exit"):
                    state = False
            return state

    def tell(self, line: str) -> None:
        """Write `line` and a newline to its stdin (a pipe holds it while the process is
        stopped)."""
        assert self.process.stdin is not None, "started without stdin=True"
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def send(self, signum: signal.Signals) -> float:
        """Send a signal; returns when it was sent (time.monotonic())."""
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)
        return sent

    def kill(self) -> None:
        """SIGKILL its process group (a SIGSTOPped process dies too) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._reader.join(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
