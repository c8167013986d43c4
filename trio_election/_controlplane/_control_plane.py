"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests.

    with ControlPlane.start() as cp:
        ns = cp.create_namespace()
        alice = cp.user("alice", namespace=ns, verbs={"leases": ["get", "create", "update"]})
        ...  # talk to cp.server with alice.token, or point a client at alice.kubeconfig

Everything here blocks (plain functions, sync `httpx`): call it from a sync fixture, or
through `trio.to_thread.run_sync` from async code.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, final

import httpx

from ._binaries import Binaries, MissingBinaries, find_binaries, missing_message
from ._kubeconfig import write_kubeconfig
from ._pki import Pki
from ._processes import (
    PortInUseError,
    ProcessGroup,
    Reaper,
    StartupError,
    check_port_free,
    free_port,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping, Sequence
    from types import TracebackType

__all__ = ["ControlPlane", "PortInUseError", "StartupError", "TestUser"]

ADMIN = "admin"
"""The admin token user's name; it is in the group `system:masters`."""

_GROUPS = {
    "leases": "coordination.k8s.io",
    "endpointslices": "discovery.k8s.io",
    "deployments": "apps",
    "statefulsets": "apps",
    "roles": "rbac.authorization.k8s.io",
    "rolebindings": "rbac.authorization.k8s.io",
}
"""API groups of the resources named in `user(verbs=...)`; any other bare name is core."""

_ETCD_WITHIN = 30.0
_APISERVER_WITHIN = 120.0
_GRANTS_WITHIN = 30.0
_RESTART_GRACE = 5.0  # SIGTERM, then SIGKILL after this many seconds
_ETCD_GRACE = 1.0
"""etcd's graceful stop waits ~7 s for the apiserver's open gRPC streams; its data is
written (to the page cache, `--unsafe-no-fsync`) before that, so a kill loses nothing."""
_ATTEMPTS = 3  # new ports each time: a port found free may be taken before we bind it

_running: set[ControlPlane] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """No etcd or apiserver outlives the interpreter, whatever the tests did."""
    with _running_lock:
        planes = list(_running)
    for plane in planes:
        plane.stop()


def _group_and_resource(name: str) -> tuple[str, str]:
    """`"leases"` -> `("coordination.k8s.io", "leases")`; `"foos.example.com"` as written."""
    resource, dot, group = name.partition(".")
    if dot:
        return group, resource
    return _GROUPS.get(resource, ""), resource


@final
@dataclass(frozen=True, slots=True)
class TestUser:
    """A service account with a token, bound to exactly the rights it was created with."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    """The service account's name (as asked for)."""
    token: str
    kubeconfig: Path
    """Server, `certificate-authority-data`, the token; `namespace` as context namespace."""
    namespace: str
    username: str
    """The name the apiserver knows it by: `system:serviceaccount:<namespace>:<name>`."""


class _ApiError(RuntimeError):
    pass


@final
class ControlPlane:
    """etcd and kube-apiserver on free loopback ports, TLS from a CA of its own, RBAC on.

    Start with `ControlPlane.start()` (blocks until the apiserver is ready and an admin
    request works) and end with `stop()` or a `with` block. Raises `MissingBinaries` (a
    `FileNotFoundError`) when the binaries are missing and `StartupError` when a process
    does not come up.
    """

    server: str
    """`https://127.0.0.1:<port>`."""
    ca_file: Path
    """The CA that signed the apiserver's serving certificate (PEM)."""
    ca_pem: bytes
    admin_token: str
    """A token of the user `admin` in the group `system:masters`."""
    admin_kubeconfig: Path
    bin_dir: Path
    etcd_url: str
    temp_dir: Path
    """Everything of this control plane on disk (data, certificates, logs); removed by stop()."""

    def __init__(self, binaries: Binaries, temp_dir: Path) -> None:
        """Use `ControlPlane.start()`."""
        self.bin_dir = binaries.bin_dir
        self.temp_dir = temp_dir
        self.server = ""
        self.ca_file = temp_dir / "pki" / "ca.crt"
        self.ca_pem = b""
        self.admin_token = ""
        self.admin_kubeconfig = temp_dir / "admin.kubeconfig"
        self.etcd_url = ""
        self._binaries = binaries
        self._pki: Pki | None = None
        self._etcd: ProcessGroup | None = None
        self._apiserver: ProcessGroup | None = None
        self._etcd_ports = (0, 0)
        self._apiserver_port = 0
        self._admin: httpx.Client | None = None
        self._granted: dict[tuple[str, str], dict[tuple[str, str], frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._reaper = Reaper()
        self._reaper.watch_path(temp_dir)

    def __repr__(self) -> str:
        return f"<ControlPlane server={self.server!r} temp_dir={str(self.temp_dir)!r}>"

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> ControlPlane:
        """Start etcd and kube-apiserver from `bin_dir` (default: as the build script finds
        them) and wait until both serve; blocks for a few seconds."""
        binaries = _resolve_binaries(bin_dir)
        temp_dir = Path(tempfile.mkdtemp(prefix="trio-election-k8s-"))
        plane = cls(binaries, temp_dir)
        with _running_lock:
            _running.add(plane)
        try:
            plane._boot()
        except BaseException:
            plane.stop()
            raise
        return plane

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pids(self) -> tuple[int, ...]:
        """The process ids of etcd and kube-apiserver while they run (each leads its group)."""
        processes = (self._etcd, self._apiserver)
        return tuple(p.pid for p in processes if p is not None and p.pid is not None)

    def stop(self) -> None:
        """Kill both process groups and remove `temp_dir`; idempotent, never raises for
        processes already gone."""
        with self._lock:
            admin, self._admin = self._admin, None
            if admin is not None:
                admin.close()
            for process in (self._apiserver, self._etcd):
                if process is not None:
                    process.stop()  # resumes a paused group first
            self._apiserver = self._etcd = None
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self._reaper.release()
        with _running_lock:
            _running.discard(self)

    def _boot(self) -> None:
        pki = self._pki = Pki.create(self.temp_dir / "pki")
        self.ca_file = pki.ca_file
        self.ca_pem = pki.ca_pem
        self.admin_token = secrets.token_urlsafe(32)
        tokens = self.temp_dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN},{ADMIN}-uid,"system:masters"\n')
        tokens.chmod(0o600)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._boot_processes(tokens)
                break
            except StartupError as error:
                for process in (self._apiserver, self._etcd):
                    self._halt(process, _RESTART_GRACE)
                self._apiserver = self._etcd = None
                if attempt == _ATTEMPTS or "address already in use" not in str(error):
                    raise
        self.admin_kubeconfig = write_kubeconfig(
            self.admin_kubeconfig,
            server=self.server,
            ca_pem=self.ca_pem,
            user=ADMIN,
            token=self.admin_token,
            namespace="default",
        )

    def _boot_processes(self, tokens: Path) -> None:
        assert self._pki is not None
        logs = self.temp_dir / "logs"
        logs.mkdir(exist_ok=True)
        data = self.temp_dir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        client_port, peer_port, secure_port = free_port(), free_port(), free_port()
        self._etcd_ports = (client_port, peer_port)
        self._apiserver_port = secure_port
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._etcd = ProcessGroup(
            "etcd",
            [
                str(self._binaries.etcd),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            logs / "etcd.log",
        )
        self._launch_etcd()

        pki = self._pki
        self.server = f"https://127.0.0.1:{secure_port}"
        self._apiserver = ProcessGroup(
            "kube-apiserver",
            [
                str(self._binaries.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure_port}",
                f"--cert-dir={self.temp_dir / 'certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.client_ca_file}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={tokens}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.service_account_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
            logs / "kube-apiserver.log",
        )
        self._launch_apiserver()

    def _launch_etcd(self) -> None:
        """Start etcd (its arguments and data as at boot) and wait until it is healthy."""
        etcd = self._etcd
        assert etcd is not None
        etcd.start(_child_env())
        self._watch(etcd)
        with httpx.Client(trust_env=False, timeout=2) as plain:

            def etcd_healthy() -> bool:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = plain.get(f"{self.etcd_url}/health")
                    health: dict[str, object] = answer.json()
                    return health.get("health") == "true"
                return False

            wait_for("etcd", etcd_healthy, within=_ETCD_WITHIN, alive=etcd.check_alive)

    def _launch_apiserver(self) -> None:
        """Start kube-apiserver (its arguments as at boot) and wait until it is ready."""
        apiserver = self._apiserver
        assert apiserver is not None
        apiserver.start(_child_env())
        self._watch(apiserver)
        old_admin, self._admin = self._admin, self.http_client()
        if old_admin is not None:  # its pooled connections went with the old process
            old_admin.close()
        self._wait_ready(self._admin, within=_APISERVER_WITHIN)

    def _wait_ready(self, client: httpx.Client, *, within: float) -> None:
        def get_ok(path: str) -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return client.get(path).status_code == 200
            return False

        wait_for("kube-apiserver /readyz", lambda: get_ok("/readyz"), within=within,
                 alive=self._check_alive)  # fmt: skip
        wait_for(
            "an admin GET of namespace default",
            lambda: get_ok("/api/v1/namespaces/default"),
            within=within,
            alive=self._check_alive,
        )

    def _check_alive(self) -> None:
        """Raise `StartupError` if a process died or was stopped: waiting is pointless."""
        for process in (self._etcd, self._apiserver):
            if process is None or process.pid is None:
                raise StartupError("the control plane is stopped or not started")
            process.check_alive()
            if process.paused:
                raise StartupError(f"{process.name} is paused: resume it first")

    def _watch(self, process: ProcessGroup) -> None:
        if process.pid is not None:
            self._reaper.watch_group(process.pid)

    def _halt(self, process: ProcessGroup | None, grace: float) -> None:
        if process is not None and process.pid is not None:
            pgid = process.pid
            process.stop(grace)
            self._reaper.forget_group(pgid)

    # -- faults: stop, start, pause -----------------------------------------------------------

    def restart_apiserver(self, *, down_for: float = 0.0) -> None:
        """Stop kube-apiserver, stay down `down_for` seconds, start it again and block until
        `/readyz` and an admin request succeed (a few seconds).

        The new process has the same port (so `server` and every kubeconfig stay valid),
        certificates, token file and etcd: objects, resourceVersions, ServiceAccounts, RBAC
        objects and TokenRequest tokens all survive. Requests made *while* it restarts see
        refused connections, timeouts, and often, for some milliseconds, 403 for a user
        whose RoleBinding is in place (RBAC caches filling); that window closes before
        `/readyz` says ok, so it is over when this returns (docs/control-plane.md has the
        figures). Raises `PortInUseError` if another process took the port meanwhile.
        """
        if down_for < 0:
            raise ValueError(f"down_for must be >= 0, not {down_for!r}")
        with self._lock:
            self._stop_apiserver()
            if down_for:
                time.sleep(down_for)
            self._start_apiserver()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM to its group, SIGKILL after 5 s; a paused one is
        resumed to act on it). Requests to `server` are then refused. Idempotent."""
        with self._lock:
            self._stop_apiserver()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again after `stop_apiserver()` (or after it died), on the
        same port, and block until it is ready (as `restart_apiserver`). Does nothing but
        wait for readiness when it is running. Raises `PortInUseError` if another process
        holds the port and `RuntimeError` while etcd is stopped."""
        with self._lock:
            self._start_apiserver()

    def _stop_apiserver(self) -> None:
        self._require_booted()
        self._halt(self._apiserver, _RESTART_GRACE)

    def _start_apiserver(self) -> None:
        apiserver, etcd = self._require_booted()
        if apiserver.running:
            assert self._admin is not None
            self._wait_ready(self._admin, within=_APISERVER_WITHIN)
            return
        if not etcd.running:
            raise RuntimeError("etcd is stopped: start_etcd() before start_apiserver()")
        self._halt(apiserver, _RESTART_GRACE)  # one that exited by itself: reap it
        check_port_free(self._apiserver_port, what="kube-apiserver's secure port")
        try:
            self._launch_apiserver()
        except StartupError as error:
            self._halt(apiserver, _RESTART_GRACE)
            if "address already in use" in str(error):  # taken between our check and its bind
                check_port_free(self._apiserver_port, what="kube-apiserver's secure port")
            raise

    def stop_etcd(self) -> None:
        """Stop etcd (SIGTERM, SIGKILL after 1 s), keeping its data. The apiserver keeps
        running: its requests fail (5xx, or hang until the client gives up) and `/readyz`
        fails. Idempotent."""
        with self._lock:
            _, etcd = self._require_booted()
            self._halt(etcd, _ETCD_GRACE)

    def start_etcd(self, *, wait_for_apiserver: bool = True) -> None:
        """Start etcd again on the same ports with the same data and block until it is
        healthy, and (by default) until the apiserver, which reconnects by itself, is
        ready again. Raises `PortInUseError` if another process holds one of its ports."""
        with self._lock:
            _, etcd = self._require_booted()
            if not etcd.running:
                self._halt(etcd, _ETCD_GRACE)  # one that exited by itself: reap it
                client_port, peer_port = self._etcd_ports
                check_port_free(client_port, what="etcd's client port")
                check_port_free(peer_port, what="etcd's peer port")
                try:
                    self._launch_etcd()
                except StartupError:
                    self._halt(etcd, _RESTART_GRACE)
                    raise
            if wait_for_apiserver and self._admin is not None and self.apiserver_running:
                self._wait_ready(self._admin, within=_APISERVER_WITHIN)

    def pause_apiserver(self) -> None:
        """SIGSTOP kube-apiserver's process group: connections are still accepted by the
        kernel, but nothing answers, so requests hang until the client's timeout. Its
        etcd session goes on. `stop()` and `stop_apiserver()` clean up a paused one too."""
        with self._lock:
            apiserver, _ = self._require_booted()
            apiserver.pause()

    def resume_apiserver(self) -> None:
        """SIGCONT kube-apiserver's process group; requests that waited are answered.
        Harmless when it is not paused; does nothing while it is stopped."""
        with self._lock:
            apiserver, _ = self._require_booted()
            if apiserver.running:
                apiserver.resume()

    @contextlib.contextmanager
    def paused_apiserver(self) -> Generator[None, None, None]:
        """`with control_plane.paused_apiserver(): ...`: paused inside, resumed on exit,
        whatever happens inside."""
        self.pause_apiserver()
        try:
            yield
        finally:
            self.resume_apiserver()

    def ensure_running(self) -> None:
        """Undo any fault: resume a paused apiserver, start etcd and the apiserver where
        stopped (or dead), and block until ready. Put it in a `finally` of a test that
        injects faults into a shared control plane."""
        with self._lock:
            apiserver, _ = self._require_booted()
            if apiserver.running:
                apiserver.resume()
        self.start_etcd(wait_for_apiserver=False)
        self.start_apiserver()

    @property
    def apiserver_running(self) -> bool:
        """kube-apiserver's process is up (paused counts as up)."""
        return self._apiserver is not None and self._apiserver.running

    @property
    def etcd_running(self) -> bool:
        """etcd's process is up."""
        return self._etcd is not None and self._etcd.running

    def wait_ready(self) -> None:
        """Block until `/readyz` and an admin request succeed; `StartupError` if a process
        is stopped, paused or dead, or after 120 s."""
        with self.http_client() as client:
            self._wait_ready(client, within=_APISERVER_WITHIN)

    def wait_for_rights(self, user: TestUser) -> None:
        """Block until SelfSubjectAccessReviews made with `user.token` show every right
        `user()` last granted it, as `user()` itself does; `StartupError` after 30 s.

        A cheap guard for the `finally` of a fault test. After `restart_apiserver()` or
        `start_apiserver()` returns, the RBAC window of the new apiserver is already over
        (measured: it closes before `/readyz` says ok), so this normally returns at once."""
        granted = self._granted.get((user.namespace, user.name))
        if granted is None:
            raise ValueError(
                f"{user.username} was not made by this control plane's user(): "
                "pass a TestUser that it returned"
            )
        self._wait_for_rights(user.token, user.namespace, granted, {})

    def _require_booted(self) -> tuple[ProcessGroup, ProcessGroup]:
        if self._apiserver is None or self._etcd is None:
            raise RuntimeError("the control plane is not running (stopped, or never started)")
        return self._apiserver, self._etcd

    # -- clients ----------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this control plane's CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def http_client(self, token: str | None = None) -> httpx.Client:
        """A new sync client for `server` with `token` (the admin's by default); close it."""
        return httpx.Client(
            base_url=self.server,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
            trust_env=False,  # loopback only, never through a proxy from the environment
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        ok: Iterable[int] = (200, 201),
        token: str | None = None,
    ) -> httpx.Response:
        if token is None:
            if self._admin is None:
                raise RuntimeError("the control plane is not running")
            response = self._admin.request(method, path, json=json)
        else:
            with self.http_client(token) as client:
                response = client.request(method, path, json=json)
        if response.status_code not in set(ok):
            raise _ApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response

    def metrics(self) -> str:
        """The apiserver's `/metrics` text (e.g. `apiserver_request_total{verb,resource,code}`)."""
        return self._request("GET", "/metrics", ok=(200,)).text

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (admin kubeconfig by default); check the result yourself."""
        kubectl = self._binaries.kubectl
        if kubectl is None:
            raise FileNotFoundError(f"no kubectl in {self.bin_dir}")
        config = kubeconfig if kubeconfig is not None else self.admin_kubeconfig
        return subprocess.run(
            [
                str(kubectl),
                f"--kubeconfig={config}",
                f"--cache-dir={self.temp_dir / 'kubectl-cache'}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=_child_env(),
        )

    # -- namespaces and users ---------------------------------------------------------------

    def create_namespace(self, prefix: str = "test") -> str:
        """Create a namespace named `<prefix>-<random>` with the admin and return its name.

        Nothing deletes namespaces here (a bare apiserver runs no namespace controller)."""
        while True:
            name = f"{prefix}-{secrets.token_hex(4)}"
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            response = self._request("POST", "/api/v1/namespaces", json=body, ok=(201, 409))
            if response.status_code == 201:
                return name

    def user(
        self,
        name: str,
        *,
        namespace: str,
        verbs: Mapping[str, Sequence[str]],
        names: Mapping[str, Sequence[str]] | None = None,
    ) -> TestUser:
        """A service account `name` in `namespace` holding exactly `verbs` there.

        `verbs` maps resources (`"leases"`, `"endpoints"`, `"configmaps"`, or
        `"<resource>.<group>"`) to verbs; `{}` means no rights at all. `names` limits the
        verbs on some resources to those object names (RBAC's ``resourceNames``); ``create``
        stays unlimited, as RBAC cannot limit it by name. A Role and a
        RoleBinding named `trio-election-test-<name>` carry them; the token comes from the
        TokenRequest API. Blocks until a SelfSubjectAccessReview with the new token shows
        the rights in effect. Asking again for the same name redefines its rights.
        """
        granted = {
            _group_and_resource(resource): frozenset(verb_list)
            for resource, verb_list in verbs.items()
            if verb_list
        }
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
        self._request("POST", base, json=account, ok=(201, 409))
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 24 * 3600},
        }
        minted = self._request("POST", f"{base}/{name}/token", json=request, ok=(201,)).json()
        token: str = minted["status"]["token"]
        limited = {_group_and_resource(r): tuple(n) for r, n in (names or {}).items()}
        self._grant(namespace, name, granted, limited)
        before = self._granted.get((namespace, name), {})
        revoked = {
            key: verbs_before - granted.get(key, frozenset())
            for key, verbs_before in before.items()
        }
        self._granted[(namespace, name)] = granted
        self._wait_for_rights(token, namespace, granted, revoked, limited)
        kubeconfig = write_kubeconfig(
            self.temp_dir / "users" / f"{namespace}.{name}.kubeconfig",
            server=self.server,
            ca_pem=self.ca_pem,
            user=name,
            token=token,
            namespace=namespace,
        )
        return TestUser(
            name=name,
            token=token,
            kubeconfig=kubeconfig,
            namespace=namespace,
            username=f"system:serviceaccount:{namespace}:{name}",
        )

    def _grant(
        self,
        namespace: str,
        name: str,
        granted: Mapping[tuple[str, str], frozenset[str]],
        limited: Mapping[tuple[str, str], tuple[str, ...]],
    ) -> None:
        object_name = f"trio-election-test-{name}"
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
        rules: list[dict[str, object]] = []
        for (group, resource), verb_set in sorted(granted.items()):
            only = limited.get((group, resource))
            named = sorted(verb_set - {"create"}) if only else []
            free = sorted(verb_set & {"create"}) if only else sorted(verb_set)
            if named:
                rules.append(
                    {
                        "apiGroups": [group],
                        "resources": [resource],
                        "resourceNames": list(only or ()),
                        "verbs": named,
                    }
                )
            if free:
                rules.append({"apiGroups": [group], "resources": [resource], "verbs": free})
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": object_name},
            "rules": rules,
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": object_name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": object_name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        if not granted:
            for kind in ("rolebindings", "roles"):
                self._request("DELETE", f"{rbac}/{kind}/{object_name}", ok=(200, 404))
            return
        for kind, body in (("roles", role), ("rolebindings", binding)):
            created = self._request("POST", f"{rbac}/{kind}", json=body, ok=(201, 409))
            if created.status_code == 409:  # redefine: an unconditional replace
                self._request("PUT", f"{rbac}/{kind}/{object_name}", json=body, ok=(200,))

    def _wait_for_rights(
        self,
        token: str,
        namespace: str,
        granted: Mapping[tuple[str, str], frozenset[str]],
        revoked: Mapping[tuple[str, str], frozenset[str]],
        limited: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
    ) -> None:
        checks = [(key, verb, True) for key, verb_set in granted.items() for verb in verb_set]
        checks += [(key, verb, False) for key, verb_set in revoked.items() for verb in verb_set]
        if not checks:  # still make sure the token is accepted
            checks = [(("", "configmaps"), "get", False)]
        with self.http_client(token) as client:

            def effective() -> bool:
                for (group, resource), verb, allowed in checks:
                    review = {
                        "apiVersion": "authorization.k8s.io/v1",
                        "kind": "SelfSubjectAccessReview",
                        "spec": {
                            "resourceAttributes": {
                                "namespace": namespace,
                                "verb": verb,
                                "group": group,
                                "resource": resource,
                                **(
                                    {"name": only[0]}
                                    if (only := (limited or {}).get((group, resource)))
                                    and verb != "create"
                                    else {}
                                ),
                            }
                        },
                    }
                    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
                    response = client.post(path, json=review)
                    if response.status_code != 201:
                        return False
                    if bool(response.json()["status"].get("allowed")) != allowed:
                        return False
                return True

            wait_for("RBAC grants", effective, within=_GRANTS_WITHIN, alive=self.check_running)

    def check_running(self) -> None:
        """Raise `StartupError` (with the end of its log) if etcd or the apiserver died."""
        for process in (self._etcd, self._apiserver):
            if process is not None:
                process.check_alive()

    def client_cert_user(self, name: str, groups: Sequence[str] = ()) -> tuple[Path, Path]:
        """A client certificate and key file (CN = name, one O per group) the apiserver
        accepts. It holds no rights beyond those of its groups; bind some with RBAC."""
        if self._pki is None:
            raise RuntimeError("the control plane is not running")
        return self._pki.issue_client_cert(self.temp_dir / "clients", name, groups)


def _resolve_binaries(bin_dir: Path | None) -> Binaries:
    if bin_dir is None:
        found = find_binaries()
        if found is None:
            raise MissingBinaries(missing_message())
        return found
    folder = Path(bin_dir).absolute()
    for name in ("kube-apiserver", "etcd"):
        if not (folder / name).is_file():
            raise MissingBinaries(f"no {name} in {folder}")
    kubectl = folder / "kubectl"
    return Binaries(
        bin_dir=folder,
        kube_apiserver=folder / "kube-apiserver",
        etcd=folder / "etcd",
        kubectl=kubectl if kubectl.is_file() else None,
        source="argument",
    )


def _child_env() -> dict[str, str]:
    """The environment for etcd, kube-apiserver and kubectl: no proxies, no KUBECONFIG."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig"}
    return {key: value for key, value in os.environ.items() if key.lower() not in drop}
