"""The programs of docs/asyncio.md, run as written on the real apiserver.

An app whose work uses kubernetes_asyncio, kr8s or lightkube and whose leadership is this
library's, both reading the one kubeconfig of $KUBECONFIG: two replicas of each; the first
leads and does its work, SIGTERM makes it release the Lease and exit with status 143, and
the second leads the next term. The FastAPI service under uvicorn: two replicas agree on
the leader, only the leader's worker runs, `/healthz` says ok, and SIGTERM to the leader
(uvicorn's graceful shutdown) releases the Lease so that the other's worker runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from interop._fleet import LockRecorder

if TYPE_CHECKING:
    from collections.abc import Callable

    from trio_election.testing import ControlPlane

pytestmark = pytest.mark.control_plane

ASYNCIO_MD = Path(__file__).resolve().parents[2] / "docs" / "asyncio.md"
LOCK = '"leases/default/my-app"'
WITHIN = 30.0  # Python imports of the client and the library on a busy 2-core machine


def program(client: str, lock: str = LOCK) -> str:
    """The docs' program that imports `client`, with `lock` in it."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", ASYNCIO_MD.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if re.search(rf"^(import|from) {client}\b", b, re.MULTILINE)]
    assert len(found) == 1, f"docs/asyncio.md has {len(found)} programs on {client}"
    assert lock in found[0]
    return found[0]


class Replica:
    """One process of the program; `lines` are its stdout lines as they come."""

    def __init__(self, path: Path, kubeconfig: Path) -> None:
        drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
        env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
        env["KUBECONFIG"] = str(kubeconfig)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def first_line(self, within: float) -> str:
        with self._changed:
            self._changed.wait_for(
                lambda: self.lines or self.process.poll() is not None, timeout=within
            )
            assert self.lines, f"no output within {within:g} s\n{self.log()}"
            return self.lines[0]

    def log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


@pytest.mark.parametrize("client", ["kubernetes_asyncio", "kr8s", "lightkube"])
def test_an_app_on_an_asyncio_client_leads_and_hands_over_on_sigterm(
    client: str, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pytest.importorskip(client)
    namespace = control_plane.create_namespace("docs")
    path = tmp_path / "app.py"
    path.write_text(program(client).replace(LOCK, f'"leases/{namespace}/my-app"'))
    lease = LockRecorder(control_plane, namespace, "leases", "my-app")
    replicas: list[Replica] = []
    try:
        first = Replica(path, control_plane.admin_kubeconfig)
        replicas.append(first)
        # its work ran: the client read the same kubeconfig and listed the pods
        assert re.fullmatch(r"term 0: \d+ pods", first.first_line(WITHIN)), first.log()
        second = Replica(path, control_plane.admin_kubeconfig)
        replicas.append(second)
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=WITHIN) == 143, first.log()
        assert re.fullmatch(r"term 1: \d+ pods", second.first_line(WITHIN)), second.log()
        holders = [v.holder for v in lease.holders()]
        assert len(holders) == 3, holders
        assert holders[1] == "", holders  # released by the first, then taken by the second
        assert holders[0] != holders[2], holders
    finally:
        for replica in replicas:
            replica.close()
        lease.close()


def test_the_fastapi_service_runs_its_worker_on_the_leader_and_hands_over_on_sigterm(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    namespace = control_plane.create_namespace("docs")
    lock = '"leases/default/my-service"'
    service = program("fastapi", lock)
    (tmp_path / "app.py").write_text(service.replace(lock, f'"leases/{namespace}/my-service"'))
    lease = LockRecorder(control_plane, namespace, "leases", "my-service")
    replicas = [Service(tmp_path, control_plane.admin_kubeconfig) for _ in range(2)]
    try:
        urls = [replica.url(WITHIN) for replica in replicas]
        with httpx.Client(trust_env=False, timeout=10) as http:
            states = [wait_json(http, f"{url}/leader", lambda s: s["leader"]) for url in urls]
            assert states[0]["leader"] == states[1]["leader"]  # one leader, both know it
            leading = next(i for i, s in enumerate(states) if s["leader"] == s["me"])
            leader, other = replicas[leading], replicas[1 - leading]
            assert "the leader's work, term 0" in leader.wait_log("the leader's work", WITHIN)
            assert "the leader's work" not in other.log()
            health = http.get(f"{urls[leading]}/healthz")
            assert (health.status_code, health.text) == (200, "ok")

            leader.process.send_signal(signal.SIGTERM)
            # uvicorn's graceful shutdown ran the lifespan's exit (the release), then ended
            # the process by SIGTERM's own status
            assert leader.process.wait(timeout=WITHIN) == -signal.SIGTERM, leader.log()
            wait_json(http, f"{urls[1 - leading]}/leader", lambda s: s["leader"] == s["me"])
            assert "the leader's work, term 1" in other.wait_log("the leader's work", WITHIN)
        holders = [v.holder for v in lease.holders()]
        assert len(holders) == 3, holders
        assert holders[1] == "", holders
    finally:
        for replica in replicas:
            replica.close()
        lease.close()


class Service:
    """`uvicorn app:app` on a port of its choosing, its output in a file."""

    def __init__(self, folder: Path, kubeconfig: Path) -> None:
        drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
        env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
        env["KUBECONFIG"] = str(kubeconfig)
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port=0"],
            cwd=folder,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return os.pread(self._out.fileno(), 1 << 20, 0).decode(errors="replace")

    def wait_log(self, text: str, within: float) -> str:
        deadline = time.monotonic() + within
        while text not in (log := self.log()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"no {text!r} in the output\n{log}")
            time.sleep(0.05)
        return log

    def url(self, within: float) -> str:
        log = self.wait_log("Uvicorn running on ", within)
        return log.split("Uvicorn running on ", 1)[1].split()[0]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._out.close()


def wait_json(http: httpx.Client, url: str, ready: Callable[[Any], object]) -> Any:
    """GET `url` until its JSON satisfies `ready`; fails after `WITHIN` seconds."""
    deadline = time.monotonic() + WITHIN
    while True:
        state = http.get(url).json()
        if ready(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"{url}: {state}")
        time.sleep(0.05)
