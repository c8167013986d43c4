"""Kubernetes Events on the lock object, as client-go records them, on the real apiserver."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import trio

import trio_election as te
from trio_election._kube import KubeClient, KubeConfig

if TYPE_CHECKING:
    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

LEASE_VERBS = ("get", "create", "update", "patch", "watch", "list")


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("events")


def client_for(user: TestUser) -> KubeClient:
    return KubeClient(KubeConfig.load(user.kubeconfig))


async def lead_once(user: TestUser, lock: str) -> None:
    async with (
        client_for(user) as client,
        te.elect(lock, identity="replica-1", client=client, events="my-controller"),
    ):
        await trio.sleep(0.5)


async def test_became_leader_and_stopped_leading_events_on_the_lease(
    control_plane: ControlPlane, namespace: str
) -> None:
    user = control_plane.user(
        "recorder", namespace=namespace, verbs={"leases": LEASE_VERBS, "events": ("create",)}
    )
    await lead_once(user, f"leases/{namespace}/with-events")
    with control_plane.http_client() as admin:
        events = admin.get(f"/api/v1/namespaces/{namespace}/events").raise_for_status().json()
        lease = admin.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/with-events"
        ).json()
    ours = [e for e in events["items"] if e["involvedObject"].get("name") == "with-events"]
    assert sorted(e["message"] for e in ours) == [
        "replica-1 became leader",
        "replica-1 stopped leading",
    ]
    for event in ours:
        assert event["reason"] == "LeaderElection"
        assert event["type"] == "Normal"
        assert event["source"]["component"] == "my-controller"
        assert event["involvedObject"]["kind"] == "Lease"
        assert event["involvedObject"]["uid"] == lease["metadata"]["uid"]
    described = control_plane.kubectl("get", "events", "-n", namespace).stdout
    assert "replica-1 became leader" in described


async def test_without_the_right_to_create_events_the_election_goes_on(
    control_plane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trio_election")
    user = control_plane.user("no-events", namespace=namespace, verbs={"leases": LEASE_VERBS})
    await lead_once(user, f"leases/{namespace}/without-events")
    warnings = [r.getMessage() for r in caplog.records if "Events" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, not per event
    assert "Grant create on events" in warnings[0]
