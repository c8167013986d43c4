"""The exceptions that trio-election raises.

Every exception of the library derives from one base class::

    ElectionError
    ├── ConfigError            bad arguments or configuration: names the value and the rule
    ├── LeadershipLost         the term ended because the lease could not be held safely
    └── LockError              one lock operation failed; the engine retries these itself
        ├── LockConflict       someone else wrote first (HTTP 409); never overwritten
        ├── LockNotFound       the lock object does not exist (HTTP 404 on update)
        └── WatchUnavailable   the lock cannot be watched; the engine falls back to polling

Beside the tree, `Terminated` (a `SystemExit`, status 143) is raised by the faces after a
SIGTERM has stopped the election and the lock was released.

Errors that cannot heal by retrying (a missing RBAC verb, a broken kubeconfig) are raised by
the Kubernetes access layer as subclasses of `ElectionError` that are *not* `LockError`; the
engine lets them out of `elect()`, `open_election()` and `LeaderElector.run()` unwrapped.
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
