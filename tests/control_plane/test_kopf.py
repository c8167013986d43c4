"""A real kopf operator (examples/kopf_operator.py, kopf from PyPI) in two replicas on one
Lease of the real apiserver: only the leader's handlers react to a ConfigMap change;
SIGTERM to the leader hands over (status 143) and the other replica's handlers react to the
next change; a foreign write ends the leader's term and kopf with it, and a new term runs
kopf again. Judged on one monotonic clock: every `handled` line falls inside its replica's
term, and the terms never overlap.

Each replica runs with a service account holding only what docs/kopf.md lists: the Lease
verbs, `get`/`list`/`watch`/`patch` on ConfigMaps and `create` on Events, in its
namespace.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from interop._fleet import LockRecorder, Peer

from trio_election.testing import History

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kopf_operator.py"
LABEL = "kopf-operator.example.com/watched"
ANNOTATION = "kopf-operator.example.com/handled-by"
LEASE = "kopf-operator"
RIGHTS = {
    "leases": ("get", "create", "update", "patch", "watch", "list"),
    "configmaps": ("get", "list", "watch", "patch"),
    "events": ("create",),
}
STARTUP_WITHIN = 30.0  # Python imports (kopf, aiohttp) on a busy 2-core machine
REACT_WITHIN = 20.0


class Operator:
    """Replicas of the example in one namespace, each with its own service account."""

    def __init__(self, control_plane: ControlPlane, folder: Path) -> None:
        self.control_plane = control_plane
        self.folder = folder
        self.namespace = control_plane.create_namespace("kopf")
        self.admin: httpx.Client = control_plane.http_client()
        self.replicas: list[Peer] = []
        self.lease = LockRecorder(control_plane, self.namespace, "leases", LEASE)

    def start(self, identity: str) -> Peer:
        user: TestUser = self.control_plane.user(identity, namespace=self.namespace, verbs=RIGHTS)
        # kopf and the election both read $KUBECONFIG: one configuration for both
        drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
        env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
        env["KUBECONFIG"] = str(user.kubeconfig)
        args = [sys.executable, str(EXAMPLE), self.namespace, f"--identity={identity}"]
        replica = Peer("trio", identity, args, self.folder / f"{identity}.log", env)
        self.replicas.append(replica)
        return replica

    @property
    def _configmaps(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps"

    def create_configmap(self, name: str, data: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {LABEL: "yes"}},
            "data": data,
        }
        self.admin.post(self._configmaps, json=body).raise_for_status()

    def change_configmap(self, name: str, data: dict[str, str]) -> None:
        self.admin.patch(
            f"{self._configmaps}/{name}",
            json={"data": data},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()

    def configmap(self, name: str) -> dict[str, Any]:
        response = self.admin.get(f"{self._configmaps}/{name}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_handled_by(self, name: str, identity: str, *, within: float) -> None:
        """Wait until the ConfigMap's annotation names `identity` (kopf applies the
        handler's patch after the handler returned)."""
        deadline = time.monotonic() + within
        while True:
            annotations: dict[str, str] = self.configmap(name)["metadata"].get("annotations", {})
            if annotations.get(ANNOTATION) == identity:
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{name} not annotated by {identity} within {within:g} s: {annotations}"
                )
            time.sleep(0.1)

    def history(self) -> History:
        now = time.monotonic()
        return History(intervals=[iv for r in self.replicas for iv in r.intervals(now)])

    def check_handled_inside_terms(self) -> None:
        """Every `handled` line of a replica falls inside one of its own terms."""
        now = time.monotonic()
        for replica in self.replicas:
            terms = replica.intervals(now)
            for event in [e for e in replica.events if e.kind == "handled"]:
                assert any(t.start <= event.time <= t.end for t in terms), (
                    f"{replica.identity} handled {event.arg} at {event.time:.3f} outside its "
                    f"terms {terms}\n{replica.describe()}"
                )

    def check_kopf_had_every_right(self) -> None:
        """kopf logged no warning or error: RIGHTS are all it needed (without `events`,
        kopf logs an ERROR for each attempt to post the handler's Event)."""
        for replica in self.replicas:
            log = replica.log_path.read_text(errors="replace").splitlines()
            complaints = [
                line for line in log if re.search(r" (WARNING|ERROR|CRITICAL) kopf", line)
            ]
            assert complaints == [], "\n".join(complaints)

    def close(self) -> None:
        for replica in self.replicas:
            replica.kill()
        self.lease.close()
        self.admin.close()


@pytest.fixture
def operator(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Operator]:
    fleet = Operator(control_plane, tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


def handled(replica: Peer) -> list[str]:
    return [e.arg for e in replica.events if e.kind == "handled"]


def test_only_the_leader_handles_and_sigterm_hands_over(operator: Operator) -> None:
    a = operator.start("replica-a")
    a.wait_for("started-leading", within=STARTUP_WITHIN)
    b = operator.start("replica-b")
    # b has read the Lease that names a: it follows it, and takes it at once on release
    b.wait_for("new-leader", "replica-a", within=STARTUP_WITHIN)

    operator.create_configmap("settings", {"round": "1"})
    a.wait_for("handled", "settings", within=REACT_WITHIN)
    operator.wait_handled_by("settings", "replica-a", within=REACT_WITHIN)
    operator.change_configmap("settings", {"round": "2"})
    assert a.find("handled", "settings", within=REACT_WITHIN, count=2), a.describe()
    assert handled(b) == [], b.describe()

    sent = a.send(signal.SIGTERM)
    b.wait_for("started-leading", since=sent, within=REACT_WITHIN)
    assert a.process.wait(timeout=REACT_WITHIN) == 143, a.describe()
    log = a.log_path.read_text()
    assert "Traceback" not in log, log
    # kopf stopped before the lock was released: a's term ended before b's began
    stopped = a.wait_for("stopped-leading", within=0)
    started = b.wait_for("started-leading", since=sent, within=0)
    assert stopped.time < started.time
    print(
        f"kopf operator on SIGTERM: kopf stopped {(stopped.time - sent) * 1000:.0f} ms after "
        f"the signal, the other replica led {(started.time - sent) * 1000:.0f} ms after it"
    )

    operator.change_configmap("settings", {"round": "3"})
    b.wait_for("handled", "settings", since=sent, within=REACT_WITHIN)
    operator.wait_handled_by("settings", "replica-b", within=REACT_WITHIN)
    operator.create_configmap("another", {"round": "1"})
    b.wait_for("handled", "another", within=REACT_WITHIN)
    assert handled(a) == ["settings", "settings"], a.describe()

    assert [v.holder for v in operator.lease.holders()] == ["replica-a", "", "replica-b"]
    operator.check_handled_inside_terms()
    operator.history().assert_one_leader()
    operator.check_kopf_had_every_right()


def test_a_loss_stops_kopf_and_the_next_term_runs_it_again(operator: Operator) -> None:
    a = operator.start("replica-a")
    a.wait_for("started-leading", within=STARTUP_WITHIN)
    operator.create_configmap("settings", {"round": "1"})
    a.wait_for("handled", "settings", within=REACT_WITHIN)
    operator.wait_handled_by("settings", "replica-a", within=REACT_WITHIN)

    # another holder takes the Lease (as a peer that misjudged the time would): a's term
    # ends at once, kopf with it, and a takes the Lease back when that holder's 3 s lease
    # has run out
    path = f"/apis/coordination.k8s.io/v1/namespaces/{operator.namespace}/leases/{LEASE}"
    lease = operator.admin.get(path).json()
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    lease["spec"].update(
        holderIdentity="foreign-holder",
        leaseDurationSeconds=3,
        acquireTime=now,
        renewTime=now,
        leaseTransitions=lease["spec"].get("leaseTransitions", 0) + 1,
    )
    written = time.monotonic()
    operator.admin.put(path, json=lease).raise_for_status()
    stopped = a.wait_for("stopped-leading", since=written, within=REACT_WITHIN)
    a.wait_for("lost", since=written, within=REACT_WITHIN)

    # a change while no replica of ours leads waits for the next term
    operator.change_configmap("settings", {"round": "2"})
    again = a.wait_for("started-leading", since=stopped.time, within=REACT_WITHIN)
    late = a.wait_for("handled", "settings", since=again.time, within=REACT_WITHIN)
    assert late.time > again.time
    assert handled(a) == ["settings", "settings"], a.describe()
    operator.wait_handled_by("settings", "replica-a", within=REACT_WITHIN)
    holders = [v.holder for v in operator.lease.holders()]
    assert holders == ["replica-a", "foreign-holder", "replica-a"], holders
    operator.check_handled_inside_terms()
    assert a.process.poll() is None, a.describe()  # kopf's stop did not end the process
    operator.check_kopf_had_every_right()
