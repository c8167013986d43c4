"""Fixtures for the lock tests: an in-memory Kubernetes API and a client over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trio_election._kube_locks import ConfigMapLock, EndpointsLock, KubeLock, LeaseLock
from trio_election.testing._fake_api import FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from trio_election._kube import KubeClient

LOCK_TYPES: dict[str, type[KubeLock]] = {
    "leases": LeaseLock,
    "endpoints": EndpointsLock,
    "configmaps": ConfigMapLock,
}


@pytest.fixture
def api() -> FakeKubeApi:
    return FakeKubeApi()


@pytest.fixture
async def client(api: FakeKubeApi) -> AsyncGenerator[KubeClient]:
    async with api.client() as kube:
        yield kube


@pytest.fixture(params=list(LOCK_TYPES))
def resource(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def lock(resource: str, client: KubeClient) -> KubeLock:
    return LOCK_TYPES[resource]("default", "my-app", client)
