"""`trio-election status LOCK [--watch] [--output text|json] [--shards]`: who holds the lock.

Reads the lock object once and shows its record: holder, term (the record's transitions
count), acquire and renew times with their age, lease duration, the kind of object and its
resourceVersion. With ``--watch`` it then follows the object with a Kubernetes watch (or
polls, where watching is not allowed) and prints one line per change of the record other
than a renewal: a new holder, a release, a new term, a deleted object.

With ``--shards`` LOCK names a shard group (``leases/<namespace>/<name>``, as ``run
--shards`` takes it): the command lists the namespace's Leases once and shows the shard
map (each shard's holder, term, renewal, fresh or expired) and the members (the Leases
labelled ``trio-election.io/shard-group: <name>``, fresh or expired, and what each leads).

Ages are measured against this machine's wall clock and are for people to read: candidates
never trust the times written in a record, only how long they themselves have seen it
unchanged.
"""

from __future__ import annotations

import datetime
import json
import logging
import signal
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

import trio

import trio_election as te
import trio_election.kube
from trio_election._kube_locks._spec import check_lock_string

from . import _status_shards
from ._options import (
    CommandError,
    UsageError,
    add_kube_options,
    add_lock_options,
    lock_kind,
    lock_spec,
    open_client,
    say,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Generator

    from trio_election.kube import KubeClient

    from ._options import NamedLock, Subcommands

__all__ = ["add_parser", "describe", "main"]

logger = logging.getLogger("trio_election.cli")

READ_TIMEOUT = 30.0
"""Seconds one read of the lock may take before the command gives up (or, with --watch,
tries again)."""

POLL_INTERVAL = 2.0
"""Seconds between reads with --watch where the lock cannot be watched."""


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show who holds a lock (and follow it with --watch)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        usage="%(prog)s [LOCK] [--watch] [--output text|json] [--json] [--shards] [options]",
    )
    add_lock_options(parser)
    parser.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="after the current state, print one line per change until Ctrl-C",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=["text", "json"],
        default="text",
        help="text (default) or json (one object per line with --watch)",
    )
    parser.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        help="the same as --output json",
    )
    parser.add_argument(
        "--shards",
        action="store_true",
        help="LOCK is a shard group (leases only): show its shard map and its members "
        "(needs list on Leases)",
    )
    add_kube_options(parser)
    parser.set_defaults(handler=main)


def main(options: argparse.Namespace) -> int:
    if options.command is not None:
        raise CommandError("status takes no command after --", 2)
    spec = lock_spec(options)
    check_lock_string(spec)  # before the kubeconfig: a bad string needs no cluster to tell
    if options.shards:
        if check_lock_string(spec)[0] != "leases":
            raise UsageError(
                f"argument --shards: a shard group is made of Leases, and {spec!r} is not "
                "one: give LOCK as leases/<namespace>/<name>"
            )
        if options.watch:
            raise UsageError(
                "--watch does not follow a shard group: leave out --watch (run the command "
                "again to see the map again)"
            )
    client = open_client(options)
    if options.shards:
        return trio.run(_status_group, spec, client, options.output)
    lock = te.lock_from_string(spec, client)
    return trio.run(_status, lock, client, options.output, options.watch)


async def _status_group(spec: str, client: KubeClient, output: str) -> int:
    async with client:
        namespace, name, items = await _status_shards.read_group(spec, client)
    info = _status_shards.describe_group(namespace, name, items, _now())
    print(json.dumps(info) if output == "json" else _status_shards.text(info), flush=True)
    return 0


@contextmanager
def _library_quiet() -> Generator[None]:
    """The library's WARNINGs held back (its errors still shown) unless -v asked for more:
    they speak of the retries of an election, and status reads once."""
    library = logging.getLogger("trio_election")
    level = library.level
    if level == logging.WARNING:
        library.setLevel(logging.ERROR)
    try:
        yield
    finally:
        library.setLevel(level)


def _now() -> datetime.datetime:
    # display only: how old the record's timestamps look from here
    return datetime.datetime.now(datetime.UTC)


def _stamp(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(lock: NamedLock, obs: te.Observation, now: datetime.datetime) -> dict[str, Any]:
    """The fields `status` shows, as JSON-ready values."""
    record = obs.record if obs.exists else None

    def age(moment: datetime.datetime | None) -> float | None:
        return None if moment is None else round((now - moment).total_seconds(), 3)

    return {
        "lock": lock.description,
        "kind": lock_kind(lock),
        "exists": obs.exists,
        "holder": obs.holder,
        "readable": obs.record is not None or not obs.exists,
        "term": None if record is None else record.leader_transitions,
        "acquire_time": _stamp(None if record is None else record.acquire_time),
        "acquire_age_seconds": age(None if record is None else record.acquire_time),
        "renew_time": _stamp(None if record is None else record.renew_time),
        "renew_age_seconds": age(None if record is None else record.renew_time),
        "lease_duration_seconds": (
            None
            if record is None or not record.lease_duration_seconds
            else record.lease_duration_seconds
        ),
        "resource_version": obs.version or None,
    }


def _text(info: dict[str, Any]) -> str:
    lines = [f"lock:             {info['lock']} ({info['kind']})"]
    if not info["exists"]:
        lines.append("holder:           none: the object does not exist (nobody has campaigned)")
        return "\n".join(lines)
    if not info["readable"]:
        lines.append(f"holder:           {info['holder']} (the record cannot be read)")
    else:
        lines.append(f"holder:           {info['holder'] or '(none: the lock is free)'}")

    def when(key: str) -> str:
        stamp = info[f"{key}_time"]
        if stamp is None:
            return "-"
        return f"{stamp} ({info[f'{key}_age_seconds']:.1f} s ago)"

    duration = info["lease_duration_seconds"]
    lines += [
        f"term:             {'-' if info['term'] is None else info['term']} (transitions)",
        f"acquired:         {when('acquire')}",
        f"renewed:          {when('renew')}",
        f"lease duration:   {'-' if duration is None else f'{duration} s'}",
        f"resourceVersion:  {info['resource_version'] or '-'}",
    ]
    return "\n".join(lines)


def _line(info: dict[str, Any]) -> str:
    """One line for --watch."""
    stamp = _stamp(_now())
    if not info["exists"]:
        return f"{stamp} {info['lock']}: deleted"
    holder = info["holder"] or "(free)"
    return (
        f"{stamp} {info['lock']}: holder={holder} term={info['term']} "
        f"lease={info['lease_duration_seconds']}s acquired={info['acquire_time']} "
        f"resourceVersion={info['resource_version']}"
    )


def _key(obs: te.Observation) -> tuple[object, ...]:
    """What makes a change worth a line: anything but a renewal."""
    record = obs.record
    if record is None:
        return (obs.exists, obs.raw if obs.exists else None)
    return (
        obs.exists,
        record.holder_identity,
        record.leader_transitions,
        record.lease_duration_seconds,
        record.acquire_time,
    )


async def _read(lock: NamedLock) -> te.Observation:
    """One read, for status: a refusal (403, 401) is reported at once as the API server
    said it (the lock calls it transient, for an election that retries it: status does not
    retry, so neither its WARNING nor "retried" would be true here)."""
    with trio.move_on_after(READ_TIMEOUT):
        try:
            with _library_quiet():
                return await lock.get()
        except (trio_election.kube.ForbiddenError, trio_election.kube.UnauthorizedError) as exc:
            raise CommandError(f"cannot read {lock.description}: {exc}") from None
        except te.LockError as exc:
            cause = exc.__cause__
            if isinstance(
                cause, trio_election.kube.ForbiddenError | trio_election.kube.UnauthorizedError
            ):
                raise CommandError(f"cannot read {lock.description}: {cause}") from None
            raise CommandError(f"cannot read the lock: {exc}") from None
    server = lock.client.config.server if lock.client is not None else "the apiserver"
    raise CommandError(
        f"cannot read {lock.description}: no answer from {server} within {READ_TIMEOUT:g} s"
    )


async def _status(lock: NamedLock, client: KubeClient, output: str, watch: bool) -> int:
    async with client:
        obs = await _read(lock)
        info = describe(lock, obs, _now())
        print(json.dumps(info) if output == "json" else _text(info), flush=True)
        if not watch:
            return 0
        stop_signals = (signal.SIGINT, signal.SIGTERM)
        with trio.open_signal_receiver(*stop_signals) as signals, trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        scope.cancel()

                nursery.start_soon(stop_on_signal)
                await _follow(lock, obs, output)
    return 0


async def _follow(lock: NamedLock, last: te.Observation, output: str) -> None:
    def show(obs: te.Observation) -> None:
        info = describe(lock, obs, _now())
        print(json.dumps(info) if output == "json" else _line(info), flush=True)

    polling = False
    while True:
        try:
            if polling:
                await trio.sleep(POLL_INTERVAL)
                seen = [await lock.get()]
            else:
                seen = []
                async with aclosing(lock.watch(last)) as events:
                    async for obs in events:
                        if _key(obs) != _key(last):
                            show(obs)
                        last = obs
            for obs in seen:
                if _key(obs) != _key(last):
                    show(obs)
                last = obs
        except te.WatchUnavailable as exc:
            if not polling:
                say(f"cannot watch {lock.description} ({exc}); polling every {POLL_INTERVAL:g} s")
            polling = True
        except te.LockError as exc:
            say(f"reading {lock.description} failed ({exc}); trying again")
            await trio.sleep(POLL_INTERVAL)
