"""The limit of the stack: the CPU of one Lease renew when nothing but httpx sends it.
``python -m benchmarks.stack_limit [--requests N] [--runtimes trio,asyncio] [--ways ...]``

On one real control plane, one Lease; in a bare loop, the same conditional merge PATCH a
renew of ours sends (the five fields of the Lease's spec and ``metadata.resourceVersion``,
from the last answer), over one kept-alive TLS connection, its answer decoded from JSON.
What a renew of ours costs beyond that is the library's own (the engine, the lock, the
shared watch that reads the echo of every write). Ways of sending:

- ``transport``: an `httpx.Request` handed to an `httpx.AsyncHTTPTransport` of one
  connection, as `KubeClient` does;
- ``h2``: the same over HTTP/2 (``h2``; `httpx.AsyncHTTPTransport` with ``http2=True``);
- ``client``: `httpx.AsyncClient.patch`, as most programs do;
- ``kubeclient``: `KubeClient.request`, ours (credentials, the lender of connections,
  typed errors), without the lock and the engine above it.

Prints, for each runtime and way, the CPU of this process per request (ms; the median of
`--rounds` rounds) and the wall time per request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import ssl
import statistics
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from trio_election.kube import KubeClient, KubeConfig
from trio_election.testing import ControlPlane

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

RUNTIMES = ("trio", "asyncio")
WAYS = ("transport", "h2", "client", "kubeclient")
MERGE_PATCH = "application/merge-patch+json"


def _spec(holder: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": 15,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": 0,
    }


async def _loop(
    send: Callable[[bytes], Awaitable[bytes]], version: str, requests: int
) -> tuple[float, float, str]:
    """`requests` renewals in a row: (CPU seconds, wall seconds, the last version)."""

    async def renew(version: str) -> str:
        body = {"metadata": {"resourceVersion": version}, "spec": _spec("limit")}
        answer = json.loads(await send(json.dumps(body).encode()))
        return str(answer["metadata"]["resourceVersion"])

    return await _renewals(renew, version, requests)


async def _renewals(
    renew: Callable[[str], Awaitable[str]], version: str, requests: int
) -> tuple[float, float, str]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        version = await renew(version)
    return time.process_time() - cpu, time.perf_counter() - wall, version


async def _measure(
    url: str,
    token: str,
    context: ssl.SSLContext,
    version: str,
    *,
    kubeconfig: Path,
    path: str,
    way: str,
    requests: int,
    rounds: int,
) -> tuple[list[float], list[float], str]:
    """CPU and wall ms per request, one figure per round."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Content-Type": MERGE_PATCH,
        "User-Agent": "stack-limit",
    }
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None)
    timeout = httpx.Timeout(None, connect=30.0)
    cpu: list[float] = []
    wall: list[float] = []
    if way in ("transport", "h2"):
        async with httpx.AsyncHTTPTransport(
            verify=context, limits=limits, http1=way != "h2", http2=way == "h2"
        ) as transport:
            extensions = {"timeout": timeout.as_dict()}

            async def send(body: bytes) -> bytes:
                request = httpx.Request(
                    "PATCH", url, headers=headers, content=body, extensions=extensions
                )
                response = await transport.handle_async_request(request)
                try:
                    return await response.aread()
                finally:
                    await response.aclose()

            version = (await _loop(send, version, requests // 10 + 1))[2]  # warm up
            for _ in range(rounds):
                used, took, version = await _loop(send, version, requests)
                cpu.append(used * 1000 / requests)
                wall.append(took * 1000 / requests)
    elif way == "kubeclient":
        async with KubeClient(KubeConfig.load(kubeconfig)) as kube:

            async def renew(version: str) -> str:
                body = {"metadata": {"resourceVersion": version}, "spec": _spec("limit")}
                answer = await kube.request("PATCH", path, json=body, content_type=MERGE_PATCH)
                return str(answer["metadata"]["resourceVersion"])

            version = (await _renewals(renew, version, requests // 10 + 1))[2]
            for _ in range(rounds):
                used, took, version = await _renewals(renew, version, requests)
                cpu.append(used * 1000 / requests)
                wall.append(took * 1000 / requests)
    else:
        async with httpx.AsyncClient(
            verify=context, limits=limits, timeout=timeout, headers=headers, trust_env=False
        ) as client:

            async def send(body: bytes) -> bytes:
                response = await client.patch(url, content=body)
                return response.content

            version = (await _loop(send, version, requests // 10 + 1))[2]
            for _ in range(rounds):
                used, took, version = await _loop(send, version, requests)
                cpu.append(used * 1000 / requests)
                wall.append(took * 1000 / requests)
    return cpu, wall, version


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack_limit", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="renewals per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="trio,asyncio")
    parser.add_argument("--ways", default=",".join(WAYS), help="transport,h2,client,kubeclient")
    options = parser.parse_args()
    with ControlPlane.start() as plane:
        namespace = plane.create_namespace("stack-limit")
        user = plane.user("limit", namespace=namespace, verbs={"leases": ["get", "patch"]})
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        with plane.http_client() as admin:
            lease = {"metadata": {"name": "limit"}, "spec": _spec("limit")}
            created = admin.post(path, json=lease)
            created.raise_for_status()
            version: str = created.json()["metadata"]["resourceVersion"]
        context = ssl.create_default_context(cadata=plane.ca_pem.decode())
        url = f"{plane.server.rstrip('/')}{path}/limit"
        for runtime in options.runtimes.split(","):
            for way in options.ways.split(","):

                async def run(way: str = way, since: str = version) -> tuple[Any, Any, str]:
                    return await _measure(
                        url,
                        user.token,
                        context,
                        since,
                        kubeconfig=user.kubeconfig,
                        path=f"{path}/limit",
                        way=way,
                        requests=options.requests,
                        rounds=options.rounds,
                    )

                cpu, wall, version = anyio.run(run, backend=runtime)
                rounds = ", ".join(f"{c:.3f}" for c in cpu)
                print(
                    f"{runtime} {way}: CPU {statistics.median(cpu):.3f} ms per request "
                    f"({rounds}); wall {statistics.median(wall):.3f} ms",
                    flush=True,
                )


if __name__ == "__main__":
    main()
