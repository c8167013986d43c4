"""`trio-election run LOCK [options] -- CMD ARGS…`: run a command only while leader.

The runner campaigns for LOCK; once it leads it starts CMD with TRIO_ELECTION_IDENTITY,
TRIO_ELECTION_TERM and TRIO_ELECTION_LOCK in its environment, and renews the lease while CMD
runs. Then:

- CMD exits: the lock is released at once and the runner exits with CMD's status (128 + N
  when a signal N ended it), or campaigns again with ``--again``;
- the lease is lost (renewals failed until the renew deadline, or someone else took the
  lock): CMD gets SIGTERM, SIGKILL once the grace period is over, cut to
  ``lease_duration - renew_deadline`` so that CMD is gone before any other candidate may
  take the lock; the runner exits with status 75 (EX_TEMPFAIL: campaign again later),
  or campaigns again with ``--again``;
- SIGTERM or SIGINT to the runner: CMD gets SIGTERM, SIGKILL after the grace period (the
  lease is renewed meanwhile: nobody else starts before CMD is gone), the lock is released
  and the runner exits with 143 (SIGTERM) or 130 (SIGINT). A second signal kills CMD at once.

Without CMD the runner holds the lock until it is stopped or loses it (the old
``leader-elector`` sidecar), which with ``--http`` tells the pod who leads.

With ``--shards S`` LOCK names a shard group (``leases/<namespace>/<name>``): the runner
joins it and runs one CMD per shard it leads, with TRIO_ELECTION_SHARD (the shard's
number) and TRIO_ELECTION_SHARDS (S) added, TRIO_ELECTION_TERM and TRIO_ELECTION_LOCK the
shard's. A shard's CMD is stopped (SIGTERM, SIGKILL after the grace period) before its
shard moves to another member; a CMD that exits ends the runner with its status, every
shard released (with ``--again`` it is started again); SIGTERM or SIGINT leaves the group,
stops every CMD, then releases every shard.
"""

from __future__ import annotations

import argparse
import logging
import signal
from typing import TYPE_CHECKING

import trio

import trio_election as te

from .._election import open_election_with
from .._kube_locks._spec import check_lock_string
from . import _run_shards
from ._child import (
    Settings,
    Stop,
    check_command,
    exit_status,
    listen,
    start_command,
    terminate,
    url,
)
from ._http import Sidecar, parse_address, serve_http
from ._options import (
    UsageError,
    add_election_options,
    add_kube_options,
    add_lock_options,
    election_options,
    env_default,
    lock_name,
    lock_spec,
    open_client,
    parse_duration,
    say,
)

if TYPE_CHECKING:
    from trio_election.kube import KubeClient

    from ._options import Subcommands

__all__ = ["EXIT_LOST", "add_parser", "main"]

logger = logging.getLogger("trio_election.cli")

EXIT_LOST = 75
"""The runner's status after a lost lease (without ``--again``): EX_TEMPFAIL, try later."""

DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else ""


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command only while leader",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [LOCK] [options] [-- CMD [ARG ...]]",
        epilog="Durations are Go durations (15s, 1m30s, 500ms) or plain seconds. "
        "Every option can also come from the environment variable shown with it. "
        "Exit status: CMD's; 143 after SIGTERM, 130 after SIGINT; 75 after a lost lease; "
        "2 for bad input; 1 when the election cannot go on (e.g. a missing permission).",
    )
    add_lock_options(parser)
    add_election_options(parser)
    parser.add_argument(
        "--shards",
        type=_run_shards.shard_count,
        metavar="S",
        help="join the shard group LOCK (leases only) and run one CMD per shard led, "
        "S shards in all (no environment variable: TRIO_ELECTION_SHARDS is CMD's)",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        default=env_default("AGAIN", "") not in ("", "0", "false", "False"),
        help="after a term (CMD exited, or the lease was lost) campaign again instead of "
        "exiting; with --shards, start a shard's CMD again when it exits "
        "(env TRIO_ELECTION_AGAIN=1)",
    )
    parser.add_argument(
        "--grace",
        type=parse_duration,
        default=env_default("GRACE", "5s"),
        metavar="DURATION",
        help="how long CMD has to exit after SIGTERM before SIGKILL (default 5s; on a lost "
        "lease at most lease duration - renew deadline; env TRIO_ELECTION_GRACE)",
    )
    parser.add_argument(
        "--http",
        metavar="ADDR",
        default=env_default("HTTP"),
        help='serve GET / ({"name": leader}; with --shards the shards led and the members), '
        "/healthz and /metrics on ADDR: HOST:PORT, :PORT (every interface); port 0 picks a "
        "free one (env TRIO_ELECTION_HTTP)",
    )
    parser.add_argument(
        "--healthz-tolerance",
        type=parse_duration,
        default=env_default("HEALTHZ_TOLERANCE", "20s"),
        metavar="DURATION",
        help="/healthz fails when leading with the last renewal older than lease duration "
        "+ this (default 20s, as kube-controller-manager; env TRIO_ELECTION_HEALTHZ_TOLERANCE)",
    )
    add_kube_options(parser)
    parser.set_defaults(handler=main)


def main(options: argparse.Namespace) -> int:
    if options.command == []:
        raise UsageError("nothing after --: give the command to run, e.g. -- ./worker --flag")
    command: list[str] = options.command or []
    http = None
    if options.http:
        try:
            http = parse_address(options.http)
        except ValueError as exc:
            raise UsageError(f"argument --http: {exc}") from None
    spec = lock_spec(options)
    check_lock_string(spec)  # before the kubeconfig: a bad string needs no cluster to tell
    if options.shards is not None:
        _run_shards.check_group(spec)
    if command:
        check_command(command[0])
    client = open_client(options)
    settings = Settings(
        spec=spec,
        lock=te.lock_from_string(spec, client),
        command=command,
        options=election_options(options, client),
        grace=options.grace,
        again=options.again,
        http=http,
        http_text=options.http or "",
        tolerance=options.healthz_tolerance,
        shards=options.shards,
    )
    if settings.shards is not None:
        return trio.run(_run_shards.run, settings, client)
    return trio.run(_run, settings, client)


async def _run(settings: Settings, client: KubeClient) -> int:
    stop = Stop()
    listeners = await listen(settings.http, settings.http_text)
    sidecar = Sidecar(
        None,
        name=lock_name(settings.lock),
        lease_duration=settings.options.lease_duration,
        tolerance=settings.tolerance,
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with client, trio.open_nursery() as nursery:
            nursery.start_soon(stop.watch, signals)
            if listeners:
                await nursery.start(serve_http, sidecar, listeners)
                where = ", ".join(url(listener) for listener in listeners)
                say(f"serving {where} (/, /healthz, /metrics)")
            status: int | None = None
            with stop.scope:
                status = await _elect(settings, stop, sidecar)
            nursery.cancel_scope.cancel()
    if status is None:  # a signal came while not leading
        assert stop.signal is not None
        return 128 + stop.signal
    return status


async def _elect(settings: Settings, stop: Stop, sidecar: Sidecar) -> int:
    async with open_election_with(settings.lock, settings.options) as election:
        sidecar.election = election
        try:
            return await _campaign(election, settings, stop, sidecar)
        finally:
            sidecar.election = None


async def _campaign(election: te.Election, settings: Settings, stop: Stop, sidecar: Sidecar) -> int:
    while True:
        say(f"campaigning for {election.lock} as {election.identity}")
        status = 0
        async with election.leading() as leadership:
            stop.leading = True
            try:
                status = await _lead(leadership, settings, stop, sidecar)
            finally:
                stop.leading = False
        # leaving leading() released the lock, unless the term was lost
        if stop.signal is not None:
            say(f"released {election.lock}; exiting")
            return 128 + stop.signal
        if leadership.lost:
            say(f"lost {election.lock} (term {leadership.term}): {leadership.reason}")
            if not settings.again:
                return EXIT_LOST
            continue
        if not settings.again:
            say(f"released {election.lock}; exiting with the command's status {status}")
            return status
        say(f"released {election.lock}; the command exited with status {status}")
        # a command that exits at once must not turn into a storm of terms
        await trio.sleep(settings.options.retry_period)


async def _lead(leadership: te.Leadership, settings: Settings, stop: Stop, sidecar: Sidecar) -> int:
    lock = leadership.lock
    if not settings.command:
        say(f"leading {lock} (term {leadership.term}) until stopped")
        await stop.requested.wait()
        return 0
    say(f"leading {lock} (term {leadership.term}): starting {settings.command[0]}")
    env = {
        "TRIO_ELECTION_IDENTITY": leadership.identity,
        "TRIO_ELECTION_TERM": str(leadership.term),
        "TRIO_ELECTION_LOCK": lock,
    }
    process = await start_command(settings.command, env)
    sidecar.command_running = True
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_when_asked, process, settings.grace, stop)
            await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            # the term ended under us (lost, or an error): nobody else may start before
            # lease_duration - renew_deadline has passed, so the grace period ends there too
            timing = settings.options
            grace = min(settings.grace, timing.lease_duration - timing.renew_deadline)
            with trio.CancelScope(shield=True):
                await terminate(process, grace, stop.kill_now)
        sidecar.command_running = False
        if process.returncode is not None:
            status = exit_status(process.returncode)
            sidecar.command_exits[status] = sidecar.command_exits.get(status, 0) + 1
    return exit_status(process.returncode)


async def _stop_when_asked(process: trio.Process, grace: float, stop: Stop) -> None:
    await stop.requested.wait()
    await terminate(process, grace, stop.kill_now)
