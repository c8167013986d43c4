"""Many elections in one process, each for a Lease of its own, every one of them leading.

    python benchmarks/_many.py trio|asyncio|uvloop|kubepy --kubeconfig K --namespace NS \
        --prefix P -n N [--lease-duration 15 --renew-deadline 10 --retry-period 2]

`trio`: one process, one `KubeClient`, N `open_election()` + `leading()` tasks, under
`trio.run`; `asyncio` and `uvloop`: the same code under `asyncio.run` and `uvloop.run`.
`kubepy`: the `kubernetes` Python client as it is used: one thread per `LeaderElection`.
The Leases are `<P>-0` ... `<P>-<N-1>`. Lines on stdout, as the peers print them:
``ready``, one ``started-leading "<lease>"`` per election, then ``all-leading "<N>"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

_printing = threading.Lock()


def emit(event: str, arg: str) -> None:
    with _printing:  # one whole line at a time, whichever thread prints
        print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


class Counter:
    def __init__(self, total: int) -> None:
        self.total = total
        self.led: set[str] = set()
        self.lock = threading.Lock()

    def lead(self, name: str) -> None:
        emit("started-leading", name)
        with self.lock:
            self.led.add(name)
            if len(self.led) == self.total:
                emit("all-leading", str(self.total))


def run_ours(options: argparse.Namespace) -> None:
    import anyio

    import trio_election as te
    from trio_election.kube import KubeClient, KubeConfig

    counter = Counter(options.n)

    async def one(client: KubeClient, name: str) -> None:
        async with te.open_election(
            f"leases/{options.namespace}/{name}",
            identity=options.identity,
            client=client,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
            stop_on_sigterm=False,
        ) as election:
            while True:
                async with election.leading():
                    counter.lead(name)
                    try:
                        await anyio.sleep_forever()
                    finally:
                        emit("stopped-leading", name)

    async def main() -> None:
        config = KubeConfig.load(options.kubeconfig)
        async with KubeClient(config) as client, anyio.create_task_group() as group:
            emit("ready", options.identity)
            for i in range(options.n):
                group.start_soon(one, client, f"{options.prefix}-{i}")

    if options.kind == "trio":
        import trio

        trio.run(main)
    elif options.kind == "asyncio":
        import asyncio

        asyncio.run(main())
    else:
        import uvloop

        uvloop.run(main())


def run_kubepy(options: argparse.Namespace) -> None:
    from kubernetes import config as _config
    from kubernetes.leaderelection import electionconfig as _electionconfig
    from kubernetes.leaderelection import leaderelection as _leaderelection
    from kubernetes.leaderelection.resourcelock import leaselock as _leaselock

    # the package is untyped where it matters here
    kube_config: Any = _config
    electionconfig: Any = _electionconfig
    leaderelection: Any = _leaderelection
    LeaseLock: Any = _leaselock.LeaseLock

    kube_config.load_kube_config(config_file=options.kubeconfig)
    counter = Counter(options.n)

    def one(name: str) -> None:
        lock: Any = LeaseLock(name, options.namespace, options.identity)
        election: Any = leaderelection.LeaderElection(
            electionconfig.Config(
                lock,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                onstarted_leading=lambda: counter.lead(name),
                onstopped_leading=lambda: emit("stopped-leading", name),
            )
        )
        election.run()

    emit("ready", options.identity)
    threads = [
        threading.Thread(target=one, args=(f"{options.prefix}-{i}",), daemon=True)
        for i in range(options.n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("kind", choices=("trio", "asyncio", "uvloop", "kubepy"))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--identity", default="many")
    parser.add_argument("-n", type=int, required=True)
    parser.add_argument("--lease-duration", type=int, default=15)
    parser.add_argument("--renew-deadline", type=int, default=10)
    parser.add_argument("--retry-period", type=int, default=2)
    options = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    if options.kind == "kubepy":
        run_kubepy(options)
    else:
        run_ours(options)


if __name__ == "__main__":
    main()
