"""The exceptions of the election: the `ElectionError` base and the lock errors.

The whole tree, the Kubernetes access layer's `ApiError`s included, and which errors can
come out of `elect()`, is drawn in one place: the docstring of `trio_election`
(trio_election/__init__.py). Which errors heal is the lock layer's knowledge: a `LockError`
is retried by the engine; any other `ElectionError` ends the election and comes out of
`elect()`, `open_election()` and `LeaderElector.run()` unwrapped.
"""

from __future__ import annotations

import signal

__all__ = [
    "ConfigError",
    "ElectionError",
    "LeadershipLost",
    "LockConflict",
    "LockError",
    "LockNotFound",
    "Terminated",
    "WatchUnavailable",
]


class ElectionError(Exception):
    """Base class of every exception raised by trio-election."""


class ConfigError(ElectionError, ValueError):
    """An argument or a configuration value is invalid.

    The message names the value that is wrong and the rule it breaks.
    """


class LeadershipLost(ElectionError):
    """The leader's term ended because the lease could no longer be held safely.

    Raised by `elect()` after the body has been cancelled and has unwound, whenever the term
    ended by loss, even if the body caught the cancellation.
    """


class LockError(ElectionError):
    """A lock operation failed in a way that retrying may cure (network, 5xx, timeouts).

    `retry_after` is how long the server asked us to wait first (a 429's Retry-After, in
    seconds), None when it did not say.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LockConflict(LockError):
    """A write was refused because the lock changed since it was read (or already exists)."""


class LockNotFound(LockError):
    """The lock object does not exist."""


class WatchUnavailable(LockError):
    """The lock cannot be watched (not supported, or forbidden); poll instead."""


class Terminated(SystemExit):
    """The process received SIGTERM: the election was stopped and the lock released.

    A `SystemExit` whose status (143, 128 + SIGTERM) is the one a process killed by SIGTERM
    exits with, so an uncaught `Terminated` ends the program quietly with that status.
    """

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)
