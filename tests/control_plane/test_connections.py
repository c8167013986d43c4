"""How many connections many elections of one process hold to the real apiserver.

Every election leads a Lease of its own in one namespace, all through one `KubeClient`:
the process holds one watch of the namespace's Leases (the first election's watch of its
own Lease closes when the shared one starts) and at most `REQUEST_CONNECTIONS` request
connections, however many elections there are; and as they renew, no connection is opened
(none closed and opened again: no TLS handshake in a steady state).

The connections are the process's own TCP sockets, established to the apiserver's port
(from ``/proc``: Linux only), less those open before the elections start (the control
plane's admin client keeps its own).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

import trio_election as te
from trio_election._kube import KubeClient, KubeConfig
from trio_election._kube._client import REQUEST_CONNECTIONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from trio_election.testing import ControlPlane, TestUser

pytestmark = [
    pytest.mark.control_plane,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

VERBS = ("get", "create", "update", "patch", "watch", "list")
_runs = itertools.count()


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("connections")


def connections_to(port: int) -> frozenset[str]:
    """The socket inodes of this process's established TCP connections to `port`."""
    mine: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:[") : -1])
    found: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            # state 01: ESTABLISHED; the table lists every process of the network namespace
            if state == "01" and int(remote.rpartition(":")[2], 16) == port and inode in mine:
                found.add(inode)
    return frozenset(found)


async def wait_until(condition: Callable[[], bool], *, within: float) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await trio.sleep(0.05)


async def elect_all(
    user: TestUser, namespace: str, n: int, elections: dict[str, te.Election]
) -> None:
    """`n` elections through one client, each leading a Lease of its own, until cancelled."""
    run = next(_runs)

    async def one(client: KubeClient, name: str) -> None:
        async with te.open_election(
            f"leases/{namespace}/{name}",
            identity="fleet",
            client=client,
            lease_duration=15,
            renew_deadline=12,
            retry_period=1,
            stop_on_sigterm=False,
        ) as election:
            elections[name] = election
            async with election.leading():
                await trio.sleep_forever()

    async with (
        KubeClient(KubeConfig.load(user.kubeconfig)) as client,
        trio.open_nursery() as nursery,
    ):
        for i in range(n):
            nursery.start_soon(one, client, f"conn-{run}-{i}")


@pytest.mark.parametrize("n", [10, 100])
async def test_connections_stay_flat_in_the_number_of_elections(
    control_plane: ControlPlane, namespace: str, n: int
) -> None:
    user = control_plane.user(f"conn{n}", namespace=namespace, verbs={"leases": VERBS})
    port = httpx.URL(control_plane.server).port
    assert port is not None
    elections: dict[str, te.Election] = {}
    others = connections_to(port)  # the control plane's own admin client keeps some

    def renewals() -> list[int]:
        return [e.statistics().renewals for e in elections.values()]

    def settled(since: list[int]) -> bool:
        """Every election leads, watches, and has renewed twice since `since`."""
        stats = [e.statistics() for e in elections.values()]
        return (
            len(stats) == n
            and all(s.is_leader and s.watching for s in stats)
            and all(s.renewals >= before + 2 for s, before in zip(stats, since, strict=False))
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(elect_all, user, namespace, n, elections)
        await wait_until(lambda: len(elections) == n, within=30)
        await wait_until(lambda: settled([0] * n), within=60)
        held = connections_to(port) - others
        print(f"{n} elections hold {len(held)} connections")
        assert len(held) <= 1 + REQUEST_CONNECTIONS  # one watched namespace

        before = renewals()
        await wait_until(lambda: settled(before), within=30)
        later = connections_to(port) - others
        print(f"after two more renewals each: {len(later)}, {len(later - held)} of them new")
        assert later <= held, "a connection was opened (a TLS handshake) while renewing"
        assert all(e.statistics().terms == 1 for e in elections.values()), "a term was lost"
        nursery.cancel_scope.cancel()
