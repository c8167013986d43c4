"""A candidate of kubernetes_asyncio's leader election, for the interop tests.

    python tests/peers/kasyncio_candidate.py --kubeconfig K --namespace NS --name NAME \
        --identity ID --lease-duration 4 --renew-deadline 3 --retry-period 1 \
        [--on-sigterm exit|cancel] [--grace SECONDS]

It runs `kubernetes_asyncio.leaderelection.leaderelection.LeaderElection` with a
`LeaseLock` under `asyncio.run`, the leader's work being a coroutine that waits until it is
cancelled. Each stdout line is ``<monotonic seconds> <event> <JSON string>``
(`time.monotonic()`, CLOCK_MONOTONIC, as every peer prints it):

    ready "<identity>"            the kubeconfig is loaded; campaigning starts
    new-leader "<holder>"         a read of the Lease named another holder than the read
                                  before ("" for none); it leaves the election alone
    started-leading "<identity>"  `onstarted_leading` started: the leader's work starts
    stopped-leading "<identity>"  the work has ended (its task was cancelled)
    lost "<identity>"             `onstopped_leading` was called: renewing failed
    refused "<status> <reason>"   its lock logged a write the apiserver refused (409 Conflict)
    stalled "<holder>"            a read's answer is held back (after SIGUSR1), until SIGUSR2
    cancelled "run"               SIGTERM cancelled the task running `run()` (--on-sigterm
                                  cancel)
    error "<type>: <message>"     `run()` raised
    exit "<reason>"               main returns; status 0 (1 after an error)

`--on-sigterm exit` (the default) installs no handler: SIGTERM ends the process at once,
as it ends any asyncio program that does not handle it. `--on-sigterm cancel` is what that
package's maintainers answer to "how do I stop renewing on SIGTERM" (kubernetes_asyncio#411):
a handler cancels the task that runs `run()`; the program then finishes its own shutdown,
`--grace` seconds here (a pod's termination grace period, spent closing other things),
before `asyncio.run` returns and cancels what is left. The package has no release: the
Lease stays held until it expires either way. Durations are whole seconds: its `LeaseLock`
calls `int()` on the lease duration's text.

SIGUSR1 holds back the answer of the next read of the Lease, as a slow network would, until
SIGUSR2: the elector's write that follows the read then goes out with the resourceVersion
read before whatever happened meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any

from kubernetes_asyncio import config as _config
from kubernetes_asyncio.client import api_client as _api_client
from kubernetes_asyncio.leaderelection import electionconfig as _electionconfig
from kubernetes_asyncio.leaderelection import leaderelection as _leaderelection
from kubernetes_asyncio.leaderelection.resourcelock import leaselock as _leaselock

# the package's types are partial where it matters here
kube_config: Any = _config
ApiClient: Any = _api_client.ApiClient
electionconfig: Any = _electionconfig
leaderelection: Any = _leaderelection

DESCRIPTION = (__doc__ or "").splitlines()[0]


def emit(event: str, arg: str) -> None:
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


class WatchedLeaseLock(_leaselock.LeaseLock):
    """Its `LeaseLock`, printing a `new-leader` line when a read names another holder, and
    holding back a read's answer between SIGUSR1 and SIGUSR2."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: str | None = None
        self.stall_next = False
        self.resume = asyncio.Event()

    def stall(self) -> None:
        self.stall_next = True
        self.resume.clear()

    async def get(self, name: str, namespace: str) -> Any:
        found: Any = await super().get(name, namespace)
        ok, record = found
        holder: str = (getattr(record, "holder_identity", None) or "") if ok else ""
        if ok and holder != self.seen:
            self.seen = holder
            emit("new-leader", holder)
        if self.stall_next:
            self.stall_next = False
            emit("stalled", holder)
            await self.resume.wait()
        return found


class RefusedWrites(logging.Handler):
    """A `refused` line for each refused write its lock logs (it returns False and logs
    the `ApiException`; the election sees only the False)."""

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        status = getattr(error, "status", None)
        if status is not None:
            emit("refused", f"{status} {getattr(error, 'reason', '')}")


async def campaign(options: argparse.Namespace) -> int:
    identity: str = options.identity
    await kube_config.load_kube_config(config_file=options.kubeconfig)

    async def work() -> None:
        emit("started-leading", identity)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            emit("stopped-leading", identity)

    async def stopped() -> None:
        emit("lost", identity)

    async with ApiClient() as api:
        lock = WatchedLeaseLock(options.name, options.namespace, identity, api)
        election: Any = leaderelection.LeaderElection(
            electionconfig.Config(
                lock,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                onstarted_leading=work,
                onstopped_leading=stopped,
            )
        )
        running = asyncio.create_task(election.run())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, lock.stall)
        loop.add_signal_handler(signal.SIGUSR2, lock.resume.set)
        if options.on_sigterm == "cancel":
            loop.add_signal_handler(signal.SIGTERM, running.cancel)
        emit("ready", identity)
        try:
            await running
        except asyncio.CancelledError:
            emit("cancelled", "run")
            await asyncio.sleep(options.grace)  # the rest of the program's shutdown
            emit("exit", "signal")
            return 0
        except Exception as error:  # what it raises is what the test reads
            emit("error", f"{type(error).__name__}: {error}")
            emit("exit", "error")
            return 1
    emit("exit", "lost")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--name", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lock", choices=("leases",), default="leases")
    parser.add_argument("--lease-duration", type=int, default=15, help="whole seconds")
    parser.add_argument("--renew-deadline", type=int, default=10, help="whole seconds")
    parser.add_argument("--retry-period", type=int, default=2, help="whole seconds")
    parser.add_argument("--on-sigterm", choices=("exit", "cancel"), default="exit")
    parser.add_argument("--grace", type=float, default=0.0, help="seconds, after a cancel")
    options = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(relativeCreated)8.0f %(name)s %(levelname)s %(message)s",
    )
    # what the elector decides, without the REST client's DEBUG lines (response bodies)
    logging.getLogger("kubernetes_asyncio.leaderelection").setLevel(logging.DEBUG)
    logging.getLogger("kubernetes_asyncio.leaderelection.resourcelock").addHandler(RefusedWrites())
    sys.exit(asyncio.run(campaign(options)))


if __name__ == "__main__":
    main()
