"""`trio-election run --shards S LOCK [options] -- CMD ARGS…`: one CMD per shard led.

The runner joins the shard group LOCK (`open_shards`, ``leases/<namespace>/<name>``) and,
for each shard it leads, starts CMD with TRIO_ELECTION_SHARD (the shard's number),
TRIO_ELECTION_SHARDS (S), TRIO_ELECTION_IDENTITY, TRIO_ELECTION_TERM (the shard's term)
and TRIO_ELECTION_LOCK (the shard's Lease) in its environment. Then:

- the shard moves to another member (a join, a leave, a rebalance): its CMD gets SIGTERM,
  SIGKILL after ``--grace``; the shard is released once CMD has exited, and only then may
  its new owner start its own CMD;
- the shard's lease is lost: the same, with the grace period cut to
  ``lease_duration - renew_deadline`` (nobody else may take the shard before that);
- a CMD exits by itself: the runner leaves the group, stops the other shards' commands,
  releases every shard and exits with that CMD's status; with ``--again`` that shard's CMD
  is started again after one retry period instead (the shard is kept);
- SIGTERM or SIGINT to the runner: it leaves the group first (the others rebalance at once),
  every CMD gets SIGTERM (SIGKILL after ``--grace``), every shard is released after its CMD
  has exited, and the runner exits with 143 or 130. A second signal kills the commands.
"""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

import trio

import trio_election as te

from .._kube_locks._spec import check_lock_string
from ._child import Stop, exit_status, listen, start_command, terminate, url
from ._http import ShardSidecar, serve_http
from ._options import UsageError, say

if TYPE_CHECKING:
    from trio_election.kube import KubeClient

    from ._child import Settings

__all__ = ["check_group", "run", "shard_count"]


def shard_count(text: str) -> int:
    """The value of ``--shards``: a whole number of at least 1 (else a usage error)."""
    value = text.strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(
        f"invalid shard count {text!r}: give a whole number of shards, at least 1, e.g. --shards 16"
    )


def check_group(spec: str) -> None:
    """Raise `UsageError` unless `spec` (a valid lock string) can name a shard group."""
    resource, _, _ = check_lock_string(spec)
    if resource != "leases":
        raise UsageError(
            f"argument --shards: a shard group is made of Leases, and {spec!r} names "
            f"{resource}: give LOCK as leases/<namespace>/<name>"
        )


class _CommandExited(Exception):
    """A shard's CMD exited by itself (without ``--again``): the runner ends with `status`."""

    def __init__(self, shard: int, status: int) -> None:
        super().__init__(f"the command of shard {shard} exited with status {status}")
        self.shard = shard
        self.status = status


async def run(settings: Settings, client: KubeClient) -> int:
    """The sharded runner: join, serve until a signal or a CMD's exit, leave; the status."""
    assert settings.shards is not None
    stop = Stop(stopping="leaving the group, stopping the commands, then releasing the shards")
    listeners = await listen(settings.http, settings.http_text)
    options = settings.options
    sidecar = ShardSidecar(
        None, lease_duration=options.lease_duration, tolerance=settings.tolerance
    )
    status: int | None = None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with client, trio.open_nursery() as nursery:
            nursery.start_soon(stop.watch, signals)
            if listeners:
                await nursery.start(serve_http, sidecar, listeners)
                where = ", ".join(url(listener) for listener in listeners)
                say(f"serving {where} (/, /healthz, /metrics)")
            with stop.scope:
                try:
                    status = await _serve(settings, client, stop, sidecar)
                except _CommandExited as exc:
                    say(f"{exc}; left the group and released every shard; exiting")
                    status = exc.status
            nursery.cancel_scope.cancel()
    if status is None:  # a signal
        assert stop.signal is not None
        return 128 + stop.signal
    return status


async def _serve(
    settings: Settings, client: KubeClient, stop: Stop, sidecar: ShardSidecar
) -> int | None:
    assert settings.shards is not None
    options = settings.options
    count = settings.shards
    # the lease is lost at the renew deadline; nobody may take the shard before the lease
    # duration has passed since: the command's grace period ends there on a loss
    lost_grace = min(settings.grace, options.lease_duration - options.renew_deadline)

    async def work(shard: int, leadership: te.Leadership) -> None:
        lock = leadership.lock
        if not settings.command:
            say(f"shard {shard}: leading {lock} (term {leadership.term})")
            await trio.sleep_forever()
        what = f"the command of shard {shard}"
        env = {
            "TRIO_ELECTION_IDENTITY": leadership.identity,
            "TRIO_ELECTION_TERM": str(leadership.term),
            "TRIO_ELECTION_LOCK": lock,
            "TRIO_ELECTION_SHARD": str(shard),
            "TRIO_ELECTION_SHARDS": str(count),
        }
        while True:
            program = settings.command[0]
            say(f"shard {shard}: leading {lock} (term {leadership.term}): starting {program}")
            process = await start_command(settings.command, env)
            sidecar.commands_running.add(shard)
            try:
                await process.wait()
            finally:
                if process.returncode is None:
                    # the shard moves, its lease is lost, or the runner leaves: the command
                    # is gone before the shard is released (or, lost, may be taken)
                    grace = lost_grace if leadership.lost else settings.grace
                    with trio.CancelScope(shield=True):
                        await terminate(process, grace, stop.kill_now, what)
                sidecar.commands_running.discard(shard)
                key = (shard, exit_status(process.returncode))
                sidecar.command_exits[key] = sidecar.command_exits.get(key, 0) + 1
            status = exit_status(process.returncode)
            if not settings.again:
                raise _CommandExited(shard, status)
            say(f"{what} exited with status {status}; starting it again")
            # a command that exits at once must not turn into a storm of restarts
            await trio.sleep(options.retry_period)

    async with te.open_shards(
        settings.spec,
        shards=count,
        identity=options.identity,
        client=client,
        lease_duration=options.lease_duration,
        renew_deadline=options.renew_deadline,
        retry_period=options.retry_period,
        stop_on_sigterm=False,  # the runner's signals: a second one kills the commands
        events=options.events,
    ) as shards:
        sidecar.shards = shards
        say(f"joining {shards.group} as {shards.identity} ({count} shards)")
        with trio.CancelScope() as serving:
            stop.leave = serving
            stop.leading = True  # from now on a signal leaves the group in order
            await shards.serve(work)
        group = shards.group
    say(f"left {group}; every shard released; exiting")
    return None
