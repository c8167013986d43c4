"""What the subcommands share: durations, environment defaults, the lock, the client, errors,
and the election options as flags (built from `ElectionOptions`, one flag per option that
the command exposes)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import trio_election as te
from trio_election._kube._errors import NoConfigFound
from trio_election.kube import KubeClient, KubeConfig

from .._core._options import ElectionOptions, Flag, option_specs

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ENV_PREFIX",
    "CommandError",
    "NamedLock",
    "Parser",
    "Subcommands",
    "UsageError",
    "add_election_options",
    "add_kube_options",
    "add_lock_options",
    "election_options",
    "env_default",
    "format_seconds",
    "lock_kind",
    "lock_name",
    "lock_spec",
    "one_line",
    "open_client",
    "parse_duration",
    "say",
    "split_command",
]

ENV_PREFIX = "TRIO_ELECTION_"


class CommandError(Exception):
    """A failure to report as one line, ending the command with `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CommandError):
    """Bad input on the command line: status 2, as argparse's own errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 2)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (raised, printed by `main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class Subcommands(Protocol):
    """What a subcommand's `add_parser` needs of `ArgumentParser.add_subparsers()`."""

    def add_parser(self, name: str, **kwargs: Any) -> Parser: ...


class _Arguments(Protocol):
    """A parser or an argument group."""

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...


def say(message: str) -> None:
    """One line on stderr, for the person or the log collector watching the command."""
    print(f"trio-election: {message}", file=sys.stderr, flush=True)


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_PLAIN = re.compile(r"\d+\.?\d*|\.\d+")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (``15s``, ``1m30s``, ``500ms``) or plain seconds (``15``).

    Raises `argparse.ArgumentTypeError` (a one-line usage error) for anything else,
    including negative durations."""
    value = text.strip()
    if _PLAIN.fullmatch(value):
        return float(value)
    total = 0.0
    position = 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position == len(value) and position > 0:
        return total
    raise argparse.ArgumentTypeError(
        f"invalid duration {text!r}: give a Go duration such as 15s, 1m30s or 500ms, "
        f"or a number of seconds such as 15 or 2.5"
    )


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def env_default(name: str, fallback: str | None = None) -> str | None:
    """`$TRIO_ELECTION_<NAME>` when set and not empty, else `fallback`."""
    value = os.environ.get(ENV_PREFIX + name, "")
    return value or fallback


def add_kube_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kubernetes access")
    group.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=env_default("KUBECONFIG"),
        help="kubeconfig file (default: $KUBECONFIG, else the pod's service account, "
        "else ~/.kube/config; env TRIO_ELECTION_KUBECONFIG)",
    )
    group.add_argument(
        "--context",
        metavar="NAME",
        default=env_default("CONTEXT"),
        help="kubeconfig context to use instead of current-context (env TRIO_ELECTION_CONTEXT)",
    )


def add_lock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "lock",
        metavar="LOCK",
        nargs="?",
        default=env_default("LOCK"),
        help="the lock: '<resource>/<namespace>/<name>' or '<resource>/<name>' (the "
        "kubeconfig's namespace); <resource> is leases (recommended), endpoints, "
        "configmaps, endpointsleases or configmapsleases (env TRIO_ELECTION_LOCK); or "
        "use the --leader-elect-resource-* flags instead",
    )
    group = parser.add_argument_group("the lock, as client-go's components name it")
    group.add_argument(
        "--leader-elect-resource-lock",
        metavar="RESOURCE",
        help="leases (default), endpoints, configmaps, endpointsleases or configmapsleases",
    )
    group.add_argument(
        "--leader-elect-resource-name", metavar="NAME", help="the lock object's name"
    )
    group.add_argument(
        "--leader-elect-resource-namespace",
        metavar="NAMESPACE",
        help="the lock object's namespace (default: the kubeconfig's or the pod's)",
    )


def add_election_options(parser: argparse.ArgumentParser) -> None:
    """One flag per election option that has a `Flag`: ``--identity``, ``--events``, the
    three ``--leader-elect-*`` durations. Each is stored under the option's name."""
    groups: dict[str, _Arguments] = {}
    for spec in option_specs():
        flag = spec.command
        if not isinstance(flag, Flag):
            continue
        where: _Arguments = parser
        if flag.group is not None:
            if flag.group not in groups:
                groups[flag.group] = parser.add_argument_group(flag.group)
            where = groups[flag.group]
        shown = flag.default_text
        if flag.duration and isinstance(spec.default, int | float):
            shown = format_seconds(spec.default)
        default = f"default {shown}; " if shown is not None else ""
        where.add_argument(
            flag.name,
            dest=spec.name,
            type=parse_duration if flag.duration else str,
            default=env_default(flag.env, shown if flag.duration else None),
            metavar=flag.metavar,
            help=f"{flag.help} ({default}env {ENV_PREFIX}{flag.env})",
        )


def election_options(
    options: argparse.Namespace, client: KubeClient
) -> ElectionOptions[KubeClient]:
    """The election's options: the flags' values, the command's client, and no SIGTERM
    handling (signals are the runner's: CMD is stopped before the release)."""
    flags = {
        spec.name: getattr(options, spec.name)
        for spec in option_specs()
        if isinstance(spec.command, Flag)
    }
    command: ElectionOptions[KubeClient] = ElectionOptions(client=client, stop_on_sigterm=False)
    return dataclasses.replace(command, **flags)


def lock_spec(options: argparse.Namespace) -> str:
    """The lock string from LOCK or the --leader-elect-resource-* flags (not both)."""
    resource = options.leader_elect_resource_lock
    name = options.leader_elect_resource_name
    namespace = options.leader_elect_resource_namespace
    flags = resource is not None or name is not None or namespace is not None
    if options.lock is not None and flags:
        raise UsageError(
            f"the lock is given twice, as LOCK ({options.lock!r}) and with "
            "--leader-elect-resource-*: use one or the other"
        )
    if options.lock is not None:
        spec: str = options.lock
        return spec
    if name is None:
        raise UsageError(
            "no lock given: name it as LOCK (e.g. leases/default/my-app) or with "
            "--leader-elect-resource-name (and --leader-elect-resource-namespace)"
        )
    resource = resource or "leases"
    return f"{resource}/{namespace}/{name}" if namespace is not None else f"{resource}/{name}"


def open_client(options: argparse.Namespace) -> KubeClient:
    """A client from --kubeconfig/--context (or the usual places); `KubeConfigError` if none."""
    try:
        config = KubeConfig.load(options.kubeconfig, options.context)
    except NoConfigFound as exc:
        raise NoConfigFound(exc.where, "pass --kubeconfig PATH or set KUBECONFIG") from None
    return KubeClient(config)


NamedLock = te.LeaseLock | te.EndpointsLock | te.ConfigMapLock | te.MultiLock
"""A lock that a LOCK argument names: what `te.lock_from_string` returns."""


def lock_kind(lock: NamedLock) -> str:
    """The Kubernetes kind(s) holding the record: ``Lease``, or ``Endpoints+Lease``."""
    if isinstance(lock, te.MultiLock):
        return f"{lock.primary.kind}+{lock.secondary.kind}"
    return lock.kind


def lock_name(lock: NamedLock) -> str:
    """The lock object's name (client-go's metrics label it `name`)."""
    if isinstance(lock, te.MultiLock):
        return lock.secondary.name
    return lock.name


def one_line(text: str) -> str:
    return " ".join(text.split())


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """The arguments before the first ``--`` and the command after it (None without)."""
    args = list(argv)
    if "--" in args:
        at = args.index("--")
        return args[:at], args[at + 1 :]
    return args, None
