"""A kopf operator whose handlers run only on the leader: kopf inside `te.elect()`.

    python examples/kopf_operator.py NAMESPACE [--identity ID] [--lock leases/NS/NAME]

Run one copy per replica. Each campaigns for the Lease `leases/NAMESPACE/kopf-operator`;
the leader runs kopf's operator for the ConfigMaps of NAMESPACE labelled
``kopf-operator.example.com/watched=yes``: on a ConfigMap's creation and on every change
of its `data`, its handler writes the annotation ``kopf-operator.example.com/handled-by:
<identity>`` and posts an Event "handled by <identity>" about it (`kopf.info`).
The stand-bys run no handler at all. kopf and this library both find the configuration
as kubectl does: in a pod its service account, elsewhere `$KUBECONFIG` or `~/.kube/config`.

kopf runs standalone (``standalone=True``): its own peering pauses replicas by priority,
which is not an election (a paused replica can still be handling work).
On a loss of the lease the term's work is cancelled: kopf is told to stop (its
`stop_flag`) and gets `STOP_WITHIN` seconds to finish before the lock is released; then
the replica campaigns again. SIGTERM (how Kubernetes stops a pod) does the same, releases
the lock so that a stand-by leads at once, and exits with status 143; Ctrl-C stops kopf
and releases the lock too, then `asyncio.run()` raises KeyboardInterrupt. kopf installs
SIGINT and SIGTERM handlers of its own that would stop only kopf; they are taken back as
soon as kopf has started (`take_back_signals`). docs/kopf.md says more.

Each line on stdout is one event, ``<CLOCK_MONOTONIC seconds> <event> <JSON string>``, so
that the lines of several replicas compare on one clock:

    new-leader "<holder>"           the Lease names a new holder ("" when free)
    started-leading "<identity>"    this replica leads; kopf starts
    handled "<configmap>"           a handler ran for that ConfigMap and annotated it
    stopped-leading "<identity>"    kopf has stopped (the lock is released next)
    lost "<reason>"                 the term ended by loss; campaigning again
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import kopf

import trio_election as te

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

LABEL = "kopf-operator.example.com/watched"
ANNOTATION = "kopf-operator.example.com/handled-by"
STOP_WITHIN = 3.0
"""Seconds kopf may take to stop after a loss or SIGTERM, before the lock is released.
Keep it below lease_duration - renew_deadline (5 s by default): after a loss at the renew
deadline, another replica may take the lock that much later."""

logger = logging.getLogger("kopf_operator")
identity = ""
"""This replica's identity, for the handler (set in main)."""


def emit(event: str, arg: str) -> None:
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


@kopf.on.create("configmaps", labels={LABEL: "yes"})
@kopf.on.update("configmaps", labels={LABEL: "yes"}, field="data")
async def handle(name: str | None, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.metadata.annotations[ANNOTATION] = identity
    kopf.info(body, reason="Handled", message=f"handled by {identity}")  # an Event
    emit("handled", name or "")


def settings() -> kopf.OperatorSettings:
    chosen = kopf.OperatorSettings()
    chosen.peering.standalone = True  # no KopfPeering objects: the Lease decides who runs
    # a namespaced operator needs no right outside its namespace: no listing of namespaces
    # or CRDs (the resources are discovered once, with the discovery API anyone may read)
    chosen.scanning.disabled = True
    return chosen


def take_back_signals(saved: dict[signal.Signals, SignalHandler]) -> None:
    """Put back the SIGINT and SIGTERM handlers that kopf replaced with its own.

    kopf's handlers would stop kopf alone: the lock would be released with a clean exit
    (status 0) instead of the election's SIGTERM path (cancel, release, status 143), and
    Ctrl-C would no longer reach `asyncio.run()`."""
    if threading.current_thread() is not threading.main_thread():
        return  # kopf installs none outside the main thread
    loop = asyncio.get_running_loop()
    for signum, handler in saved.items():
        loop.remove_signal_handler(signum)
        if handler is not None:
            signal.signal(signum, handler)


async def kopf_operator(namespace: str, stop: asyncio.Event) -> None:
    """kopf's `operator()` (its `spawn_tasks` + `run_tasks`), with our signal handlers
    put back in between. Returns when `stop` is set and kopf has stopped."""
    existing = asyncio.all_tasks()
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    tasks = await kopf.spawn_tasks(
        settings=settings(), standalone=True, namespaces=[namespace], stop_flag=stop
    )
    take_back_signals(saved)
    await kopf.run_tasks(tasks, ignored=existing)


async def run_kopf(namespace: str) -> None:
    """Run kopf until cancelled (a loss, SIGTERM); then stop it and wait for it, at most
    `STOP_WITHIN` seconds. Raises kopf's own error if it fails by itself."""
    stop = asyncio.Event()
    # a task of its own, so that our cancellation does not cut kopf's own shutdown short:
    # it is told to stop through its stop_flag instead
    operator = asyncio.create_task(kopf_operator(namespace, stop), name="kopf")
    try:
        await asyncio.wait([operator])  # cancelling this wait does not cancel the task
    finally:
        stop.set()
        with anyio.move_on_after(STOP_WITHIN, shield=True):
            await asyncio.wait([operator])
        if not operator.done():
            logger.warning("kopf did not stop within %g s: cancelling it", STOP_WITHIN)
            operator.cancel()
    await operator  # kopf ended by itself: its error, if any, ends the term


async def main(options: argparse.Namespace) -> None:
    global identity
    lock: str = options.lock or f"leases/{options.namespace}/kopf-operator"
    while True:
        try:
            async with te.elect(
                lock,
                identity=options.identity,
                on_leader_change=lambda holder: emit("new-leader", holder or ""),
            ) as leadership:
                identity = leadership.identity
                emit("started-leading", identity)
                try:
                    await run_kopf(options.namespace)
                finally:
                    emit("stopped-leading", identity)
            return  # kopf stopped by itself, without an error
        except te.LeadershipLost as lost:
            emit("lost", str(lost))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("namespace", help="the namespace whose ConfigMaps are handled")
    parser.add_argument("--identity", help="this replica's identity (default: unique)")
    parser.add_argument("--lock", help="the lock (default: leases/NAMESPACE/kopf-operator)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    asyncio.run(main(parse()))
