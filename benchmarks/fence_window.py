"""How long a stale leader's write still passes the fence policy after its successor took
the Lease: ``python -m benchmarks.fence_window [--repeats N]``.

The policy reads the Lease from the apiserver's watch cache, which sees a new term a little
after the write that made it. On one real control plane, with the policy of
``trio-election fence policy`` applied: each repeat, two threads send server-side dry-run
writes stamped with the current term as fast as they can; the Lease is then moved to the
next term (another holder, ``leaseTransitions`` + 1, as a successor's acquisition); the
window is from the answer to that Lease write (when the successor knows it leads) to the
send time of the last stale write still accepted (0 when none was); also from the Lease
write's send time. Prints each repeat, and the median and maximum of both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import yaml

import trio_election as te
from trio_election.testing import ControlPlane

_PLURALS = {
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


def _stamped(fence: te.Fence) -> dict[str, Any]:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}
    return fence.stamp(manifest | {"data": {"value": "x"}})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fence_window", description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    options = parser.parse_args()
    with ControlPlane.start() as plane:
        namespace = plane.create_namespace("fence-window")
        lock = f"leases/{namespace}/app"
        writer = plane.user("app", namespace=namespace, verbs={"configmaps": ["create"]})
        policy = subprocess.run(
            [sys.executable, "-m", "trio_election", "fence", "policy", lock, "-r", "configmaps"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
        with plane.http_client() as admin:
            for document in yaml.safe_load_all(policy):
                path = f"/apis/admissionregistration.k8s.io/v1/{_PLURALS[document['kind']]}"
                admin.post(path, json=document).raise_for_status()
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "app"},
                "spec": {"holderIdentity": "holder-0", "leaseTransitions": 0},
            }
            lease = admin.post(leases, json=lease).raise_for_status().json()
            with plane.http_client(writer.token) as client:
                while (  # until the new policy is in effect
                    client.post(
                        configmaps,
                        params={"dryRun": "All"},
                        json=_stamped(te.Fence(lock, "nobody", 0)),
                    ).status_code
                    == 201
                ):
                    time.sleep(0.05)
            windows = [
                _one(plane, writer.token, admin, lock, lease, n) for n in range(options.repeats)
            ]
    for n, (after_answer, after_send, write) in enumerate(windows):
        print(
            f"term {n} -> {n + 1}: the Lease write took {write * 1000:.1f} ms; last stale "
            f"write accepted {after_send * 1000:.1f} ms after it was sent, "
            f"{after_answer * 1000:.1f} ms after its answer"
        )
    for what, index in (("after the answer", 0), ("after the send", 1)):
        figures = [w[index] * 1000 for w in windows]
        print(
            f"window {what}, over {len(windows)} repeats: "
            f"median {statistics.median(figures):.1f} ms, max {max(figures):.1f} ms"
        )


def _one(
    plane: ControlPlane, token: str, admin: Any, lock: str, lease: dict[str, Any], term: int
) -> tuple[float, float, float]:
    namespace = lease["metadata"]["namespace"]
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    stale = _stamped(te.Fence(lock, f"holder-{term}", term))
    accepted: list[float] = []
    stop = threading.Event()
    first = threading.Barrier(3)

    def hammer() -> None:
        with plane.http_client(token) as client:
            first.wait()
            while not stop.is_set():
                sent = time.monotonic()
                status = client.post(configmaps, params={"dryRun": "All"}, json=stale).status_code
                if status == 201:
                    accepted.append(sent)
                elif status != 403:
                    raise AssertionError(f"unexpected status {status}")

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    first.wait()
    time.sleep(0.05)  # let stale writes pass before the new term: the baseline
    spec = lease["spec"]
    spec["holderIdentity"] = f"holder-{term + 1}"
    spec["leaseTransitions"] = term + 1
    name = lease["metadata"]["name"]
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    sent = time.monotonic()
    answer = admin.put(path, json=lease).raise_for_status().json()
    acked = time.monotonic()
    lease.update(answer)
    time.sleep(0.5)  # well past the window: the stale writes are all refused by now
    stop.set()
    for thread in threads:
        thread.join()
    assert accepted, "no stale write passed before the new term"
    return max(0.0, max(accepted) - acked), max(0.0, max(accepted) - sent), acked - sent


if __name__ == "__main__":
    main()
