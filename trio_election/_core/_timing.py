"""Validation of the election's timing and identity, with client-go's rules."""

from __future__ import annotations

import math
import socket
import uuid
from dataclasses import dataclass
from typing import final

from ._exceptions import ConfigError

__all__ = [
    "JITTER_FACTOR",
    "MAX_EXPIRY_DELAY_FRACTION",
    "MAX_IDENTITY_LENGTH",
    "MAX_RELEASE_DELAY",
    "NOMINATION_SPREAD",
    "RELEASER_DELAY",
    "RELEASE_DELAY_SHAPE",
    "SUCCESSOR_FALLBACK",
    "SUCCESSOR_FALLBACK_SPREAD",
    "Timing",
    "check_identity",
    "default_identity",
]

JITTER_FACTOR = 1.2
"""client-go's jitter: a polling candidate waits `retry_period * (1 + JITTER_FACTOR * rand)`."""

MAX_EXPIRY_DELAY_FRACTION = 0.1
"""At a lease's expiry a watching follower waits a random delay of at most this fraction of
`retry_period` (0.2 s at the defaults), so that many followers do not write in one instant."""

MAX_RELEASE_DELAY = 0.012
"""When a watching follower sees the lock released, it waits a random delay of at most this
many seconds before it writes, and writes only if no one has taken the lock meanwhile: of
100 followers, one or two write, not 100 (a conflict for each but one)."""

RELEASE_DELAY_SHAPE = 5.0
"""How the release delay is drawn: with the density growing as `exp(SHAPE * t / MAX)`
over `[0, MAX]` (the exponential timers of feedback suppression, Nonnenmacher and
Biersack 1998): whatever the number of followers, the first one's delay is about as far
from the next one's as a write takes to reach the others' watches, and in a small fleet
the first delay is still well under the maximum."""

RELEASER_DELAY = MAX_RELEASE_DELAY + 0.04
"""A candidate that has just released the lock itself (and campaigns again) waits this many
seconds before taking it back, so that another candidate, whose release delay ends within
`MAX_RELEASE_DELAY` of seeing the release on its watch, takes it instead (40 ms more: for
its write to come back to us on our watch)."""


SUCCESSOR_FALLBACK = 0.1
"""When a released lock names a successor (a follower that nominated itself during the
term, `_succession`), that follower takes it at once and every other follower waits this
many seconds first, long enough for the successor's write to reach its watch, then its
random fallback delay (`SUCCESSOR_FALLBACK_SPREAD`): a successor that has died costs a
handover this much, and no more."""

SUCCESSOR_FALLBACK_SPREAD = 0.1
"""After `SUCCESSOR_FALLBACK`, a follower that is not the successor waits a random delay
of at most this many seconds more, drawn like the release delay (`RELEASE_DELAY_SHAPE`):
wide enough that, when the successor does not take the lock, the first of the others
usually writes alone even where a write takes 20-30 ms to reach the other watches."""

NOMINATION_SPREAD = 2.0
"""A watching follower that sees a term with no successor named names itself at a random
point of the next `NOMINATION_SPREAD * retry_period` seconds (drawn like the release
delay: the first of many followers is well ahead of the next), unless another has by
then: about one write per term."""


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    return result


@final
@dataclass(frozen=True, slots=True)
class Timing:
    """The three durations of an election, in seconds, already validated."""

    lease_duration: float
    renew_deadline: float
    retry_period: float

    @classmethod
    def validate(
        cls, lease_duration: object, renew_deadline: object, retry_period: object
    ) -> Timing:
        """Check client-go's rules plus `lease_duration >= 1`; raise `ConfigError` if broken.

        The rules: lease_duration > renew_deadline > 1.2 * retry_period > 0, and
        lease_duration >= 1 (the record stores whole seconds and the apiserver rejects 0).
        """
        lease = _seconds("lease_duration", lease_duration)
        renew = _seconds("renew_deadline", renew_deadline)
        retry = _seconds("retry_period", retry_period)
        if lease <= 0:
            raise ConfigError(f"lease_duration must be greater than zero, got {lease}")
        if renew <= 0:
            raise ConfigError(f"renew_deadline must be greater than zero, got {renew}")
        if retry <= 0:
            raise ConfigError(f"retry_period must be greater than zero, got {retry}")
        if lease < 1:
            raise ConfigError(
                f"lease_duration must be at least 1 second (the record stores whole "
                f"seconds), got {lease}"
            )
        if not lease > renew:
            raise ConfigError(
                f"lease_duration must be greater than renew_deadline "
                f"(got lease_duration={lease}, renew_deadline={renew})"
            )
        if not renew > JITTER_FACTOR * retry:
            raise ConfigError(
                f"renew_deadline must be greater than retry_period * {JITTER_FACTOR} "
                f"(got renew_deadline={renew}, retry_period={retry}, "
                f"retry_period * {JITTER_FACTOR} = {JITTER_FACTOR * retry:g})"
            )
        return cls(lease, renew, retry)

    @property
    def lease_seconds(self) -> int:
        """The lease duration written into records: whole seconds, rounded up."""
        return math.ceil(self.lease_duration)


def default_identity() -> str:
    """`<hostname>_<uuid4>`: unique per process, even for two candidates in one pod."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


MAX_IDENTITY_LENGTH = 512
"""The longest identity a candidate may use: a pod name (at most 253 characters) with a
UUID appended fits many times over; a longer one is a mistake, not a name."""


def check_identity(identity: object) -> str:
    """`identity` if this candidate may use it, else `ConfigError`.

    The rule (client-go has none): a non-empty string of at most `MAX_IDENTITY_LENGTH`
    printable characters (no newline, tab or other control or formatting character). The
    identity goes into every log line about the lock, into Kubernetes Events and into
    metric labels, where a newline forges a log line and 64 KiB floods each. It applies to
    our own identity only: a record written by a peer is read whatever its holder.
    """
    if not isinstance(identity, str):
        raise ConfigError(f"identity must be a string, got {identity!r}")
    if not identity:
        raise ConfigError("identity is empty: give each candidate a unique, non-empty identity")
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise ConfigError(
            f"identity is {len(identity)} characters long, more than {MAX_IDENTITY_LENGTH}: it "
            f"goes into every log line, Event and metric label; use a short unique name "
            f"(e.g. <pod name>_<uuid4>), starting {identity[:40]!r}"
        )
    if not identity.isprintable():
        bad = next(c for c in identity if not c.isprintable())
        shown = identity if len(identity) <= 80 else identity[:80] + "..."
        raise ConfigError(
            f"identity {shown!r} holds the unprintable character {bad!r} (U+{ord(bad):04X}): "
            f"it goes into log lines, Events and metric labels; use printable characters only"
        )
    return identity
