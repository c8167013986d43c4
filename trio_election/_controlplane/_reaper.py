"""A watchdog that cleans up after a control plane whose owner died without stopping it.

Run as a script (`python _reaper.py`, no package import) with a pipe as stdin, in a session
of its own. It reads lines `group <pgid>` and `path <folder>`, and `forget <pgid>` for a
group the owner stopped itself (before a restart); `release` means the owner cleaned up
itself. At end of input without `release` (the owner was killed, even with SIGKILL) it
kills the process groups (resuming paused ones) and removes the folders.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

__all__ = ["main"]


def _kill_groups(groups: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive: list[int] = []
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
                if sig == signal.SIGTERM:  # a paused group acts on SIGTERM only once resumed
                    os.killpg(pgid, signal.SIGCONT)
                alive.append(pgid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + 5
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [pgid for pgid in alive if _group_exists(pgid)]
        groups = alive


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: list[int] = []
    paths: list[str] = []
    for line in sys.stdin:
        verb, _, value = line.strip().partition(" ")
        if verb == "release":
            return
        if verb == "group":
            groups.append(int(value))
        elif verb == "forget" and int(value) in groups:
            groups.remove(int(value))
        elif verb == "path":
            paths.append(value)
    _kill_groups(groups)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
