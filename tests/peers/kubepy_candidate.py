"""A candidate of the `kubernetes` Python client's leader election, for the interop tests.

    python tests/peers/kubepy_candidate.py --kubeconfig K --namespace NS --name NAME \
        --identity ID --lock leases --lease-duration 4 --renew-deadline 3 --retry-period 1

It runs `kubernetes.leaderelection.leaderelection.LeaderElection` with a `LeaseLock` or
a `ConfigMapLock` as that package's own example does. Each stdout line is
``<monotonic seconds> <event> <JSON string>`` (`time.monotonic()`, CLOCK_MONOTONIC):

    ready "<identity>"            the kubeconfig is loaded; campaigning starts
    started-leading "<identity>"  `onstarted_leading` was called: the leader's work starts
    stopped-leading "<identity>"  `onstopped_leading` was called: renewing failed
    exit "<reason>"               `run()` returned; status 0

That client has no way to stop an election: no release, nothing to cancel. This script
installs no signal handler, so SIGTERM ends the process at once, as it ends any Python
program that does not handle it, and the lock stays held until it expires. Its durations
are whole seconds: its `LeaseLock` calls `int()` on the lease duration's text, so "4.0"
would crash it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from kubernetes import config as _config
from kubernetes.leaderelection import electionconfig as _electionconfig
from kubernetes.leaderelection import leaderelection as _leaderelection
from kubernetes.leaderelection.resourcelock import configmaplock as _configmaplock
from kubernetes.leaderelection.resourcelock import leaselock as _leaselock

# the package is untyped where it matters here
kube_config: Any = _config
electionconfig: Any = _electionconfig
leaderelection: Any = _leaderelection
ConfigMapLock: Any = _configmaplock.ConfigMapLock
LeaseLock: Any = _leaselock.LeaseLock


DESCRIPTION = (__doc__ or "").splitlines()[0]


def emit(event: str, arg: str) -> None:
    print(f"{time.monotonic():.9f} {event} {json.dumps(arg)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--name", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lock", choices=("leases", "configmaps"), default="leases")
    parser.add_argument("--lease-duration", type=int, default=15, help="whole seconds")
    parser.add_argument("--renew-deadline", type=int, default=10, help="whole seconds")
    parser.add_argument("--retry-period", type=int, default=2, help="whole seconds")
    options = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(relativeCreated)8.0f %(name)s %(levelname)s %(message)s",
    )
    identity: str = options.identity

    kube_config.load_kube_config(config_file=options.kubeconfig)
    lock_class: Any = LeaseLock if options.lock == "leases" else ConfigMapLock
    lock = lock_class(options.name, options.namespace, identity)
    election: Any = leaderelection.LeaderElection(
        electionconfig.Config(
            lock,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
            onstarted_leading=lambda: emit("started-leading", identity),
            onstopped_leading=lambda: emit("stopped-leading", identity),
        )
    )
    emit("ready", identity)
    election.run()
    emit("exit", "lost")


if __name__ == "__main__":
    main()
