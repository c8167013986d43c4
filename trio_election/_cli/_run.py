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
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

import trio

import trio_election as te

from .._election import open_election_with
from .._kube_locks._spec import check_lock_string
from ._http import Sidecar, parse_address, serve_http
from ._options import (
    CommandError,
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
    from collections.abc import AsyncIterator

    from trio_election.kube import KubeClient

    from .._core._options import ElectionOptions
    from ._options import NamedLock, Subcommands

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
        "--again",
        action="store_true",
        default=env_default("AGAIN", "") not in ("", "0", "false", "False"),
        help="after a term (CMD exited, or the lease was lost) campaign again instead of "
        "exiting (env TRIO_ELECTION_AGAIN=1)",
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
        help='serve GET / ({"name": leader}), /healthz and /metrics on ADDR: HOST:PORT, '
        ":PORT (every interface); port 0 picks a free one (env TRIO_ELECTION_HTTP)",
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


@final
@dataclass(frozen=True, slots=True)
class _Settings:
    lock: NamedLock
    command: list[str]
    options: ElectionOptions[KubeClient]
    grace: float
    again: bool
    http: tuple[str | None, int] | None
    http_text: str
    tolerance: float


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
    if command:
        _check_command(command[0])
    client = open_client(options)
    settings = _Settings(
        lock=te.lock_from_string(spec, client),
        command=command,
        options=election_options(options, client),
        grace=options.grace,
        again=options.again,
        http=http,
        http_text=options.http or "",
        tolerance=options.healthz_tolerance,
    )
    return trio.run(_run, settings, client)


def _check_command(program: str) -> None:
    if os.sep in program:
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise UsageError(f"cannot run {program!r}: it is not an executable file")
    elif shutil.which(program) is None:
        raise UsageError(f"command {program!r} not found on PATH")


@dataclass(slots=True)
class _Stop:
    """What the runner's signals asked for."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    """Everything but a term's orderly end: cancelled by a signal that comes while not leading."""
    signal: int | None = None
    requested: trio.Event = field(default_factory=trio.Event)
    """Set by the first signal: stop CMD, release, exit."""
    kill_now: trio.Event = field(default_factory=trio.Event)
    """Set by a second signal: SIGKILL CMD without waiting for the grace period."""
    leading: bool = False

    async def watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.signal is None:
                self.signal = signum
                self.requested.set()
                if self.leading:
                    say(f"{name}: stopping the command, then releasing the lock")
                else:
                    say(f"{name}: stopping")
                    self.scope.cancel(reason=name)
            else:
                say(f"{name} again: killing the command now")
                self.kill_now.set()


async def _listen(settings: _Settings) -> list[trio.SocketListener]:
    """The --http listeners, bound before the first request to the apiserver: a bad address
    or a port in use fails at once, and /healthz answers while the apiserver cannot be
    reached. Raises `UsageError` naming the address and the fix."""
    if settings.http is None:
        return []
    host, port = settings.http
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise UsageError(
            f"argument --http: {_listen_error(settings.http_text, host, exc)}"
        ) from None


def _listen_error(text: str, host: str | None, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {text!r}: the host {host!r} is not an address "
            f"({exc.strerror}); give an IP address or name of this machine, e.g. "
            f"127.0.0.1:4040, or :4040 for every interface"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {text!r}: the address is already in use (another process "
            f"listens there); pick a free port, or port 0 for any"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {text!r}: {host!r} is not an address of this machine; give one "
            f"of its addresses, or :PORT for every interface"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {text!r}: permission denied (ports below 1024 need privileges); "
            f"pick a port of 1024 or above"
        )
    return f"cannot listen on {text!r}: {exc.strerror or exc}"


async def _run(settings: _Settings, client: KubeClient) -> int:
    stop = _Stop()
    listeners = await _listen(settings)
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
                where = ", ".join(_url(listener) for listener in listeners)
                say(f"serving {where} (/, /healthz, /metrics)")
            status: int | None = None
            with stop.scope:
                status = await _elect(settings, stop, sidecar)
            nursery.cancel_scope.cancel()
    if status is None:  # a signal came while not leading
        assert stop.signal is not None
        return 128 + stop.signal
    return status


async def _elect(settings: _Settings, stop: _Stop, sidecar: Sidecar) -> int:
    async with open_election_with(settings.lock, settings.options) as election:
        sidecar.election = election
        try:
            return await _campaign(election, settings, stop, sidecar)
        finally:
            sidecar.election = None


def _url(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _campaign(
    election: te.Election, settings: _Settings, stop: _Stop, sidecar: Sidecar
) -> int:
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


async def _lead(
    leadership: te.Leadership, settings: _Settings, stop: _Stop, sidecar: Sidecar
) -> int:
    lock = leadership.lock
    if not settings.command:
        say(f"leading {lock} (term {leadership.term}) until stopped")
        await stop.requested.wait()
        return 0
    say(f"leading {lock} (term {leadership.term}): starting {settings.command[0]}")
    env = dict(os.environ)
    env.update(
        TRIO_ELECTION_IDENTITY=leadership.identity,
        TRIO_ELECTION_TERM=str(leadership.term),
        TRIO_ELECTION_LOCK=lock,
    )
    try:
        process = await trio.lowlevel.open_process(settings.command, env=env)
    except OSError as exc:
        message = f"cannot run {settings.command[0]!r}: {exc.strerror or exc}"
        raise CommandError(message, 127) from None
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
                await _terminate(process, grace, stop.kill_now)
        sidecar.command_running = False
        if process.returncode is not None:
            status = _exit_status(process.returncode)
            sidecar.command_exits[status] = sidecar.command_exits.get(status, 0) + 1
    return _exit_status(process.returncode)


async def _stop_when_asked(process: trio.Process, grace: float, stop: _Stop) -> None:
    await stop.requested.wait()
    await _terminate(process, grace, stop.kill_now)


async def _terminate(process: trio.Process, grace: float, kill_now: trio.Event) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (or at once when `kill_now` is set)."""
    if process.returncode is None:
        say(f"sending SIGTERM to the command (pid {process.pid}); SIGKILL in {grace:g} s")
        process.send_signal(signal.SIGTERM)
    async with trio.open_nursery() as nursery:

        async def kill_later() -> None:
            with trio.move_on_after(grace):
                await kill_now.wait()
            if process.returncode is None:
                say(f"the command (pid {process.pid}) is still running: SIGKILL")
                process.kill()

        nursery.start_soon(kill_later)
        await process.wait()
        nursery.cancel_scope.cancel()


def _exit_status(returncode: int | None) -> int:
    assert returncode is not None
    return 128 - returncode if returncode < 0 else returncode
