"""A candidate whose leader writes fenced ConfigMaps when told to on stdin, even after it
lost the lease: a process that cannot be trusted to stop, as a frozen or partitioned one.

    python _fenced_writer.py LOCK IDENTITY        (KUBECONFIG: the account to write as)

Each stdin line is a command for the leader, run with the fence of the term it began:
``write NAME VALUE`` (a stamped merge patch of ``data.value``, or a stamped create when
NAME is missing), ``delete NAME`` (stamp it, then delete that version: a fenced delete),
``delete-only NAME`` (a plain delete), ``store PATH KEY VALUE`` (a write to the SQLite
store at PATH, `harness.fenced_store`). Stdout: the event lines of `harness.event_lines`,
``started-leading`` (argument: ``<holder> <term>``), then for each command ``done`` or
``refused`` with the apiserver's message.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import anyio
import trio

import trio_election as te
from trio_election.kube import ApiError, KubeClient, KubeConfig, NotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the harness
from harness.fenced_store import FencedStore


class Stale(Exception):
    """The store refused a write: a later term wrote to it."""


MERGE = "application/merge-patch+json"


def emit(kind: str, arg: str) -> None:
    print(f"{time.monotonic()} {kind} {json.dumps(arg)}", flush=True)


async def command(client: KubeClient, fence: te.Fence, namespace: str, line: str) -> None:
    verb, name, *rest = line.split()
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    if verb == "write":
        try:
            await client.request(
                "PATCH",
                f"{path}/{name}",
                json=fence.stamp({"data": {"value": rest[0]}}),
                content_type=MERGE,
            )
        except NotFoundError:
            manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            await client.request(
                "POST", path, json=fence.stamp(manifest | {"data": {"value": rest[0]}})
            )
    elif verb == "delete":
        stamped = await client.request(
            "PATCH", f"{path}/{name}", json=fence.stamp({}), content_type=MERGE
        )
        version = stamped["metadata"]["resourceVersion"]
        options = {"preconditions": {"resourceVersion": version}}
        await client.request("DELETE", f"{path}/{name}", json=options)
    elif verb == "store":
        store = FencedStore(name)
        try:
            if not store.write(fence.term, rest[0], rest[1]):
                raise Stale(f"stale term {fence.term}: the store is at term {store.term}")
        finally:
            store.close()
    elif verb == "delete-only":
        await client.request("DELETE", f"{path}/{name}")
    else:
        raise ValueError(f"unknown command {line!r}")


async def main(lock: str, identity: str) -> None:
    async with KubeClient(KubeConfig.load()) as client:
        namespace = lock.split("/")[1]
        async with te.elect(
            lock,
            identity=identity,
            client=client,
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.5,
        ) as leadership:
            fence = leadership.fence
            emit("started-leading", f"{fence.holder} {fence.term}")
            # the writes go on after a loss: what fencing is for
            with anyio.CancelScope(shield=True):
                while line := await anyio.to_thread.run_sync(sys.stdin.readline):
                    try:
                        await command(client, fence, namespace, line)
                    except ApiError as exc:
                        emit("refused", f"{exc.status} {exc.message}")
                    except Stale as exc:
                        emit("refused", str(exc))
                    else:
                        emit("done", line.strip())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)  # on stderr: shown if the test fails
    logging.getLogger("httpx").setLevel(logging.WARNING)
    trio.run(main, sys.argv[1], sys.argv[2])
