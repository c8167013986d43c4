"""The `trio-election` command as a real child process, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

T = TypeVar("T")

# short enough for quick tests, long enough for a loaded 2-core machine
FAST_TIMING = (
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=500ms",
)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_election", *args]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_ELECTION_")}
    env.pop("KUBECONFIG", None)
    return env


def wait_until(
    what: str, probe: Callable[[], T | None], *, within: float = 20.0, every: float = 0.01
) -> T:
    """Poll `probe` until it returns something other than None (or fail after `within`)."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(every)


class Runner:
    """One `trio-election` process; its stderr goes to a file the test can read."""

    def __init__(self, folder: Path, name: str, args: Sequence[str]) -> None:
        self.name = name
        self.log = folder / f"{name}.stderr"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            command(*args),
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            stdin=subprocess.DEVNULL,
            env=child_env(),
        )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit:\n{self.stderr()}") from None

    def http_base(self) -> str:
        found = wait_until(
            f"{self.name}'s HTTP address",
            lambda: re.search(r"serving (http://\S+)", self.stderr()),
        )
        return found.group(1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_file.close()


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def status_json(lock: str, kubeconfig: Path) -> dict[str, Any]:
    done = subprocess.run(
        command("status", lock, "--output", "json", "--kubeconfig", str(kubeconfig)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5.0)
