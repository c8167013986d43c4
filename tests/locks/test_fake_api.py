"""The in-memory Kubernetes API answers as the apiserver does where a lock can tell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import trio.testing

from trio_election.testing._fake_api import DEPRECATED_ENDPOINTS, FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


@pytest.fixture
async def http(api: FakeKubeApi) -> AsyncGenerator[httpx.AsyncClient]:
    token = api.token("alice")
    async with httpx.AsyncClient(
        transport=api.transport,
        base_url="https://fake.invalid",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def lease(name: str = "x", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": spec,
    }


async def test_crud_and_versions(api: FakeKubeApi, http: httpx.AsyncClient) -> None:
    created = (await http.post(LEASES, json=lease(holderIdentity="a"))).json()
    version = created["metadata"]["resourceVersion"]
    assert created["metadata"]["uid"]
    assert created["metadata"]["creationTimestamp"].endswith("Z")
    assert (await http.get(f"{LEASES}/x")).json() == created
    # a write that changes nothing keeps the version
    same = await http.put(f"{LEASES}/x", json=created)
    assert same.json()["metadata"]["resourceVersion"] == version
    patched = await http.patch(
        f"{LEASES}/x",
        json={"spec": {"holderIdentity": "b"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.json()["metadata"]["resourceVersion"] == str(int(version) + 1)
    assert patched.json()["spec"] == {"holderIdentity": "b"}
    deleted = await http.delete(f"{LEASES}/x")
    assert deleted.json()["status"] == "Success"
    assert api.get_object("leases", "x") is None
    assert api.revision == int(version) + 2
    assert [r.verb for r in api.requests] == ["create", "get", "update", "patch", "delete"]


async def test_status_bodies(http: httpx.AsyncClient) -> None:
    missing = await http.get(f"{LEASES}/x")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'leases.coordination.k8s.io "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": "coordination.k8s.io", "kind": "leases"},
        "code": 404,
    }
    await http.post(LEASES, json=lease())
    exists = await http.post(LEASES, json=lease())
    assert exists.status_code == 409
    assert exists.json()["reason"] == "AlreadyExists"
    assert exists.json()["message"] == 'leases.coordination.k8s.io "x" already exists'
    stale = await http.put(
        f"{LEASES}/x", json={**lease(), "metadata": {"name": "x", "resourceVersion": "1"}}
    )
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert stale.json()["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "x": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    stale_patch = await http.patch(
        f"{LEASES}/x",
        json={"metadata": {"resourceVersion": "1"}, "spec": {"holderIdentity": "b"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert stale_patch.status_code == 409
    unconditional = await http.put(f"{LEASES}/x", json=lease(holderIdentity="c"))
    assert unconditional.status_code == 422  # a Lease needs a resourceVersion to update


async def test_validation_like_the_apiserver(http: httpx.AsyncClient) -> None:
    three_digits = await http.post(LEASES, json=lease(renewTime="2024-05-01T10:05:02.654Z"))
    assert three_digits.status_code == 400
    assert "MicroTime" in three_digits.json()["message"]
    zero = await http.post(LEASES, json=lease(leaseDurationSeconds=0))
    assert zero.status_code == 422
    assert "spec.leaseDurationSeconds" in zero.json()["message"]
    ok = await http.post(
        LEASES, json=lease(renewTime="2024-05-01T10:05:02.654000Z", leaseDurationSeconds=1)
    )
    assert ok.status_code == 201
    wrong_name = await http.put(f"{LEASES}/x", json={**ok.json(), "metadata": {"name": "y"}})
    assert wrong_name.status_code == 400
    strategic = await http.patch(
        f"{LEASES}/x", json={}, headers={"Content-Type": "application/strategic-merge-patch+json"}
    )
    assert strategic.status_code == 415


async def test_rbac_per_verb(api: FakeKubeApi) -> None:
    token = api.token("bob", verbs={"leases": {"get"}})
    async with httpx.AsyncClient(transport=api.transport, base_url="https://f.invalid") as http:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get(f"{LEASES}/x", headers=headers)).status_code == 404
        denied = await http.post(LEASES, json=lease(), headers=headers)
        assert denied.status_code == 403
        assert denied.json()["message"] == (
            'leases.coordination.k8s.io is forbidden: User "bob" cannot create resource "leases" '
            'in API group "coordination.k8s.io" in the namespace "default"'
        )
        watch = await http.get(LEASES, params={"watch": "1"}, headers=headers)
        assert watch.status_code == 403
        assert "cannot watch resource" in watch.json()["message"]
        assert (await http.get(f"{LEASES}/x")).status_code == 401  # no token


async def test_faults(
    api: FakeKubeApi, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    api.fail_next(2, verb="get", status=429, retry_after=3)
    first = await http.get(f"{LEASES}/x")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert (await http.get(f"{LEASES}/x")).status_code == 429
    assert (await http.get(f"{LEASES}/x")).status_code == 404
    api.fail_next(verb="create", error=httpx.ConnectError)
    with pytest.raises(httpx.ConnectError):
        await http.post(LEASES, json=lease())
    api.hang_next(verb="create")
    with trio.move_on_after(100) as scope:
        await http.post(LEASES, json=lease())
    assert scope.cancelled_caught
    api.hang_next(None)
    async with trio.open_nursery() as nursery:
        done: list[int] = []

        async def create() -> None:
            done.append((await http.post(LEASES, json=lease())).status_code)

        nursery.start_soon(create)
        await trio.sleep(50)
        assert done == []
        api.heal()
    assert done == [201]
    api.latency = 0.5
    start = trio.current_time()
    await http.get(f"{LEASES}/x")
    assert trio.current_time() - start == pytest.approx(0.5)


async def test_endpoints_carry_the_deprecation_warning(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/namespaces/default/endpoints/x")
    assert response.headers["Warning"] == DEPRECATED_ENDPOINTS
    assert "Warning" not in (await http.get(f"{LEASES}/x")).headers


async def test_list_with_a_field_selector(api: FakeKubeApi, http: httpx.AsyncClient) -> None:
    await http.post(LEASES, json=lease("x"))
    await http.post(LEASES, json=lease("y"))
    listing = (await http.get(LEASES, params={"fieldSelector": "metadata.name=y"})).json()
    assert listing["kind"] == "LeaseList"
    assert listing["metadata"]["resourceVersion"] == str(api.revision)
    assert [item["metadata"]["name"] for item in listing["items"]] == ["y"]
    assert "kind" not in listing["items"][0]


async def test_request_log_counts(api: FakeKubeApi, http: httpx.AsyncClient) -> None:
    await http.post(LEASES, json=lease("x"))
    await http.get(f"{LEASES}/x")
    await http.get(f"{LEASES}/y")
    assert api.count() == 3
    assert api.count("get") == 2
    assert api.count("get", "leases", name="y") == 1
    assert str(api.requests[-1]) == "get leases/default/y -> 404"
    assert api.requests[0].user == "alice"
    api.clear_requests()
    assert api.count() == 0
