"""The options of an election, defined once for every face.

`ElectionOptions` lists them with their defaults; the metadata of each field (`Option`) says
what it means in one line, whether `ElectionConfig` has it, and how the ``trio-election``
command exposes it (a `Flag`) or why it does not. `elect()`, `open_election()` and
`open_shards()` (all but `on_leader_change`) write the options out as keyword-only
parameters and `ElectionConfig` as fields (for their users and type checkers); the
command's flags and the forwarding from `ElectionConfig` are built from `option_specs()`.
tests/test_options.py holds every face, and the signatures written in the docs, to this
one list.

The core knows no Kubernetes client: the type of `client` is a parameter (`ClientT`), which
the faces set to `KubeClient`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._clock import ElectionClock

__all__ = [
    "TIMING_FLAGS",
    "ElectionOptions",
    "Flag",
    "Option",
    "OptionSpec",
    "option_specs",
]

ClientT = TypeVar("ClientT")

TIMING_FLAGS = "timing (client-go's flags and defaults)"
"""The command's group of the three durations."""

_KEY = "trio_election.option"


@final
@dataclass(frozen=True, slots=True)
class Flag:
    """How the command exposes an option: ``--name VALUE``, or ``$TRIO_ELECTION_<env>``."""

    name: str
    env: str
    help: str
    """The help line, without the default and the variable (the command adds those)."""
    metavar: str | None = None
    duration: bool = False
    """A Go duration (``15s``, ``500ms``) or plain seconds; the default shows as ``15s``."""
    group: str | None = None
    """The title of the help's group for the flag; None: among the command's own options."""
    default_text: str | None = None
    """What the help says of a default of None (nothing when None)."""


@final
@dataclass(frozen=True, slots=True)
class Option:
    """What the faces need to know of one option, besides its name and default."""

    doc: str
    command: Flag | str
    """The command's flag, or why the command has none (and what it does instead)."""
    config: bool = True
    """Whether `ElectionConfig` has a field of this name."""


def _about(doc: str, command: Flag | str, *, config: bool = True) -> dict[str, Option]:
    return {_KEY: Option(doc, command, config)}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ElectionOptions(Generic[ClientT]):
    """The options of one election: the keyword arguments of `elect()`/`open_election()`.

    Values are not checked here: the election checks them when it opens (`ConfigError`).
    Give the client's type by annotation (``options: ElectionOptions[KubeClient] =
    ElectionOptions(...)``): on Python 3.11 calling ``ElectionOptions[KubeClient](...)``
    fails, as for every frozen slotted generic dataclass.
    """

    identity: str | None = field(
        default=None,
        metadata=_about(
            "this candidate's identity, unique per process (default `<hostname>_<uuid4>`)",
            Flag(
                "--identity",
                "IDENTITY",
                "this candidate's identity, unique per process",
                default_text="<hostname>_<uuid4>",
            ),
        ),
    )
    client: ClientT | None = field(
        default=None,
        metadata=_about(
            "the Kubernetes client a Kubernetes lock is bound to (default: the lock's own, or one "
            "opened from `KubeConfig.load()` for the election and closed after it)",
            "the client comes from --kubeconfig and --context",
        ),
    )
    lease_duration: float = field(
        default=15.0,
        metadata=_about(
            "seconds a follower waits after the last change of the record it saw before taking "
            "the lock",
            Flag(
                "--leader-elect-lease-duration",
                "LEASE_DURATION",
                "how long followers wait after the last renewal they saw before taking the lock",
                metavar="DURATION",
                duration=True,
                group=TIMING_FLAGS,
            ),
        ),
    )
    renew_deadline: float = field(
        default=10.0,
        metadata=_about(
            "seconds the leader keeps trying to renew before its work is cancelled",
            Flag(
                "--leader-elect-renew-deadline",
                "RENEW_DEADLINE",
                "how long the leader keeps trying to renew before it stops CMD",
                metavar="DURATION",
                duration=True,
                group=TIMING_FLAGS,
            ),
        ),
    )
    retry_period: float = field(
        default=2.0,
        metadata=_about(
            "seconds between renewals, and between tries to acquire",
            Flag(
                "--leader-elect-retry-period",
                "RETRY_PERIOD",
                "time between renewals and between tries to acquire",
                metavar="DURATION",
                duration=True,
                group=TIMING_FLAGS,
            ),
        ),
    )
    release_on_exit: bool = field(
        default=True,
        metadata=_about(
            "release the lock when a term ends, so that a follower leads at once",
            "the runner always releases the lock when CMD has exited",
        ),
    )
    stop_on_sigterm: bool = field(
        default=True,
        metadata=_about(
            "SIGTERM cancels the leader's work, releases the lock and raises `Terminated`",
            "signals are the runner's: it stops CMD before the release",
        ),
    )
    events: str | None = field(
        default=None,
        metadata=_about(
            "record client-go's Kubernetes Events on the lock object under this component name",
            Flag(
                "--events",
                "EVENTS",
                "record Kubernetes Events on the lock object as client-go does (reason "
                "LeaderElection, '<identity> became leader', '... stopped leading') under this "
                "component name; needs the 'create events' right",
                metavar="COMPONENT",
            ),
        ),
    )
    clock: ElectionClock | None = field(
        default=None,
        metadata=_about(
            "the clock the election reads time from (default: the event loop's); for tests",
            "the runner uses trio's clock",
        ),
    )
    on_leader_change: Callable[[str | None], None] | None = field(
        default=None,
        metadata=_about(
            "called synchronously with each new holder (None when the lock is free)",
            "a callback is a program's; the runner's GET / shows the holder",
            config=False,  # ElectionConfig has callbacks.on_new_leader
        ),
    )


@final
@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: its name, its default and what the faces need to know of it."""

    name: str
    default: object
    doc: str
    command: Flag | str
    config: bool


def option_specs() -> tuple[OptionSpec, ...]:
    """Every option of `ElectionOptions`, in the order of its fields."""
    specs: list[OptionSpec] = []
    for each in dataclasses.fields(ElectionOptions):
        option: Option = each.metadata[_KEY]
        specs.append(OptionSpec(each.name, each.default, option.doc, option.command, option.config))
    return tuple(specs)
