"""Exec credential plugins: what runs, with what, how often, and what is refused.

The plugins are real programs (small Python scripts); the API is an `httpx.MockTransport`.
Expiry is tested with `mock_clock` jumped by hand: no autojumping while a process runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import pty
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import trio.testing

from trio_election._kube import KubeClient, KubeConfig, KubeConfigError, UnauthorizedError

from .conftest import Plugin, b64, kubeconfig, set_status, write_plugin, write_script

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from .conftest import Pki

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/x"


class Api:
    """A mock API that accepts only `token` and records the Authorization headers."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        self.seen.append(auth)
        if auth == f"Bearer {self.token}":
            return httpx.Response(200, json={"kind": "Lease"})
        return httpx.Response(401, json={"kind": "Status", "code": 401, "reason": "Unauthorized"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def exec_config(
    tmp_path: Path, plugin: Plugin | str, cluster: dict[str, Any] | None = None, **extra: Any
) -> KubeConfig:
    """Load a kubeconfig whose user is the exec plugin (v1, interactiveMode Never, `extra`)."""
    section: dict[str, Any] = {
        "apiVersion": V1,
        "command": str(plugin.path) if isinstance(plugin, Plugin) else plugin,
        "interactiveMode": "Never",
        **extra,
    }
    return KubeConfig.load(kubeconfig(tmp_path / "kc", cluster=cluster, user={"exec": section}))


def in_an_hour() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_token_from_the_plugin_with_args_and_env(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin", {"token": "exec-token"}, api_version=V1)
    config = exec_config(
        tmp_path,
        plugin,
        args=["--cluster", "prod"],
        env=[{"name": "PLUGIN_SETTING", "value": "from-kubeconfig"}],
    )
    api = Api("exec-token")
    async with KubeClient(config, transport=api.transport) as client:
        assert await client.request("GET", LEASE) == {"kind": "Lease"}
        await client.request("GET", LEASE)
    assert api.seen == ["Bearer exec-token"] * 2
    [run] = plugin.runs()  # cached: no expiry given
    assert run["argv"] == ["--cluster", "prod"]
    assert run["env"] == "from-kubeconfig"
    assert run["info"] == {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


async def test_v1beta1(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin", {"token": "beta"}, api_version=V1BETA1)
    section = {"apiVersion": V1BETA1, "command": str(plugin.path)}
    config = KubeConfig.load(kubeconfig(tmp_path / "kc", user={"exec": section}))
    api = Api("beta")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", LEASE)
    assert api.seen == ["Bearer beta"]
    assert plugin.runs()[0]["info"]["apiVersion"] == V1BETA1


async def test_cluster_info_when_asked_for(tmp_path: Path, pki: Pki) -> None:
    plugin = write_plugin(tmp_path / "bin", {"token": "t"}, api_version=V1)
    config = exec_config(
        tmp_path,
        plugin,
        provideClusterInfo=True,
        cluster={
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": b64(pki.ca_pem),
            "tls-server-name": "api.internal",
            "extensions": [
                {"name": "other", "extension": {"x": 1}},
                {
                    "name": "client.authentication.k8s.io/exec",
                    "extension": {"audience": "api.internal", "region": "eu-1"},
                },
            ],
        },
    )
    async with KubeClient(config, transport=Api("t").transport) as client:
        await client.request("GET", LEASE)
    spec = plugin.runs()[0]["info"]["spec"]
    assert spec["interactive"] is False
    cluster = spec["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_pem
    assert cluster["tls-server-name"] == "api.internal"
    assert cluster["insecure-skip-tls-verify"] is False
    assert cluster["config"] == {"audience": "api.internal", "region": "eu-1"}


async def test_cached_until_expiration(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    plugin = write_plugin(
        tmp_path / "bin", {"token": "one", "expirationTimestamp": in_an_hour()}, api_version=V1
    )
    config = exec_config(tmp_path, plugin)
    api = Api("one")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", LEASE)
        mock_clock.jump(3500)
        await client.request("GET", LEASE)
        assert len(plugin.runs()) == 1
        set_status(plugin, {"token": "two", "expirationTimestamp": in_an_hour()})
        api.token = "two"
        mock_clock.jump(200)  # past the expiry
        await client.request("GET", LEASE)
    assert len(plugin.runs()) == 2
    assert api.seen == ["Bearer one", "Bearer one", "Bearer two"]


async def test_run_again_after_a_401(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin", {"token": "old-SECRET"}, api_version=V1)
    config = exec_config(tmp_path, plugin)
    api = Api("old-SECRET")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", LEASE)
        set_status(plugin, {"token": "new-SECRET"})
        api.token = "new-SECRET"
        assert await client.request("GET", LEASE) == {"kind": "Lease"}
        assert len(plugin.runs()) == 2
        api.token = "neither"
        with pytest.raises(UnauthorizedError) as info:
            await client.request("GET", LEASE)
    assert len(plugin.runs()) == 3  # once more, then it fails
    assert (
        api.seen
        == ["Bearer old-SECRET", "Bearer old-SECRET", "Bearer new-SECRET"]
        + ["Bearer new-SECRET"] * 2
    )
    assert "SECRET" not in str(info.value)


async def test_a_late_401_for_replaced_credentials_runs_the_plugin_no_more(
    tmp_path: Path,
) -> None:
    # two requests share the plugin's token; the slow one's refusal arrives only after the
    # fast one has been refused, run the plugin again and succeeded with the new token
    plugin = write_plugin(tmp_path / "bin", {"token": "old"}, api_version=V1)
    config = exec_config(tmp_path, plugin)
    slow_sent, renewed = trio.Event(), trio.Event()
    seen: list[tuple[str, str]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        seen.append((request.url.path.rpartition("/")[2], auth))
        if auth == "Bearer new":
            renewed.set()
            return httpx.Response(200, json={"kind": "Lease"})
        if request.url.path.endswith("/slow"):
            slow_sent.set()
            await renewed.wait()
        return httpx.Response(401, json={"kind": "Status", "code": 401})

    results: list[dict[str, Any]] = []

    async def slow(client: KubeClient) -> None:
        results.append(await client.request("GET", f"{LEASE}/slow"))

    async with (
        KubeClient(config, transport=httpx.MockTransport(handle)) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(slow, client)
        await slow_sent.wait()
        set_status(plugin, {"token": "new"})
        results.append(await client.request("GET", LEASE))
    assert results == [{"kind": "Lease"}] * 2
    assert len(plugin.runs()) == 2  # the first token, and one renewal: not one per 401
    assert seen == [
        ("slow", "Bearer old"),
        ("x", "Bearer old"),
        ("x", "Bearer new"),
        ("slow", "Bearer new"),
    ]


async def test_relative_command_is_found_next_to_the_kubeconfig(tmp_path: Path) -> None:
    write_plugin(tmp_path / "bin", {"token": "rel"}, api_version=V1)
    config = exec_config(tmp_path, "./bin/creds")
    api = Api("rel")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", LEASE)
    assert api.seen == ["Bearer rel"]


@contextmanager
def stdin_is(terminal: bool) -> Generator[None]:
    """File descriptor 0 of this process is a pseudo-terminal, or /dev/null, meanwhile."""
    if terminal:
        master, replacement = pty.openpty()
    else:
        master, replacement = None, os.open(os.devnull, os.O_RDONLY)
    saved = os.dup(0)
    try:
        os.dup2(replacement, 0)
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, replacement, master):
            if fd is not None:
                os.close(fd)


def terminal_probe(folder: Path) -> tuple[Path, Path]:
    """A plugin that records what it was told (spec.interactive) and what it got (a tty)."""
    log = folder / "probe.log"
    script = write_script(
        folder / "probe",
        f"""
        import json, os
        info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
        with open({str(log)!r}, "a") as out:
            out.write(json.dumps([info["spec"]["interactive"], os.isatty(0)]) + "\\n")
        print(json.dumps({{"apiVersion": {V1!r}, "kind": "ExecCredential",
                           "status": {{"token": "t"}}}}))
        """,
    )
    return script, log


@pytest.mark.parametrize(
    ("mode", "terminal", "interactive"),
    [
        ("Never", True, False),
        ("Never", False, False),
        ("IfAvailable", True, True),
        ("IfAvailable", False, False),
        ("Always", True, True),
    ],
)
async def test_interactive_mode_decides_whether_the_plugin_gets_the_terminal(
    tmp_path: Path, mode: str, terminal: bool, interactive: bool
) -> None:
    script, log = terminal_probe(tmp_path / "bin")
    config = exec_config(tmp_path, str(script), interactiveMode=mode)
    with stdin_is(terminal=terminal):
        async with KubeClient(config, transport=Api("t").transport) as client:
            await client.request("GET", LEASE)
    # told the truth (spec.interactive) and given the terminal only when interactive
    assert json.loads(log.read_text()) == [interactive, interactive]


async def test_interactive_mode_always_without_a_terminal_is_refused(tmp_path: Path) -> None:
    script, log = terminal_probe(tmp_path / "bin")
    config = exec_config(tmp_path, str(script), interactiveMode="Always")
    with stdin_is(terminal=False):
        async with KubeClient(config, transport=Api("t").transport) as client:
            with pytest.raises(KubeConfigError, match="interactiveMode: Always") as info:
                await client.request("GET", LEASE)
    assert "standard input is not a terminal" in str(info.value)
    assert not log.exists()


async def test_missing_command_shows_the_install_hint(tmp_path: Path) -> None:
    config = exec_config(
        tmp_path,
        "no-such-credential-plugin",
        installHint="Install it with: brew install no-such-credential-plugin",
    )
    async with KubeClient(config, transport=Api("t").transport) as client:
        with pytest.raises(KubeConfigError) as info:
            await client.request("GET", LEASE)
    message = str(info.value)
    assert "'no-such-credential-plugin'" in message
    assert "not found" in message
    assert "Install it with: brew install no-such-credential-plugin" in message
    assert str(tmp_path / "kc") in message


async def test_command_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "not-executable"
    script.parent.mkdir()
    script.write_text("print('never run')\n")
    config = exec_config(tmp_path, str(script))
    async with KubeClient(config, transport=Api("t").transport) as client:
        with pytest.raises(KubeConfigError, match="the command is not executable") as info:
            await client.request("GET", LEASE)
    assert str(script) in str(info.value)
    assert str(tmp_path / "kc") in str(info.value)


def output_of(text: str) -> str:
    return f"import sys\nsys.stdout.write({text!r})\n"


@pytest.mark.parametrize(
    ("stdout", "match"),
    [
        ("token: plain-SECRET\n", "did not print an ExecCredential"),
        ('{"kind": "Secret", "data": "SECRET"}', "did not print an ExecCredential"),
        (
            '{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",'
            ' "status": {"token": "SECRET"}}',
            "apiVersion",
        ),
        (
            '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential"}',
            "no status",
        ),
        (
            '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
            ' "status": {"clientCertificateData": "SECRET"}}',
            "neither a token",
        ),
        (
            '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
            ' "status": {"token": "SECRET", "expirationTimestamp": "2030-01-01T00:00:00"}}',
            "expirationTimestamp is not an RFC 3339 time",
        ),
    ],
)
async def test_output_that_is_not_a_credential(
    tmp_path: Path, stdout: str, match: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = write_script(tmp_path / "bin" / "bad", output_of(stdout))
    config = exec_config(tmp_path, str(script))
    async with KubeClient(config, transport=Api("t").transport) as client:
        with pytest.raises(KubeConfigError, match=match) as info:
            await client.request("GET", LEASE)
    assert str(script) in str(info.value)
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in caplog.text


async def test_plugin_certificate_that_does_not_parse(tmp_path: Path, pki: Pki) -> None:
    garbage_key = "-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n"
    plugin = write_plugin(
        tmp_path / "bin",
        {"clientCertificateData": pki.client_cert_pem.decode(), "clientKeyData": garbage_key},
        api_version=V1,
    )
    config = exec_config(tmp_path, plugin)
    async with KubeClient(config, transport=Api("t").transport) as client:
        for _ in range(2):  # refused each time, not cached
            with pytest.raises(KubeConfigError) as info:
                await client.request("GET", LEASE)
            assert str(info.value).endswith(
                "status.clientKeyData: the client key does not parse as a PEM private key"
            )
            assert str(plugin.path) in str(info.value)
            assert "U0VDUkVU" not in str(info.value)
    assert len(plugin.runs()) == 2


async def test_failing_plugin(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "bin" / "fails", "import sys\nprint('SECRET on stdout')\nsys.exit(3)\n"
    )
    config = exec_config(tmp_path, str(script))
    async with KubeClient(config, transport=Api("t").transport) as client:
        with pytest.raises(KubeConfigError, match="status 3") as info:
            await client.request("GET", LEASE)
    assert "SECRET" not in str(info.value)


async def test_exec_output_never_logged_or_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plugin = write_plugin(tmp_path / "bin", {"token": "exec-SECRET"}, api_version=V1)
    config = exec_config(tmp_path, plugin, env=[{"name": "PLUGIN_SETTING", "value": "env-SECRET"}])
    api = Api("other")
    async with KubeClient(config, transport=api.transport) as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.request("GET", LEASE)
        assert "SECRET" not in repr(client)
    assert "SECRET" not in repr(config)
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in caplog.text
