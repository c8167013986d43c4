"""Exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`), run as kubectl
runs them: the command with its arguments and env, `KUBERNETES_EXEC_INFO` in the environment,
the terminal only when interactive; the `ExecCredential` printed is checked, never logged."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import KubeConfigError
from ._json import as_mapping
from ._tls import check_certificates

if TYPE_CHECKING:
    from ._config import ExecConfig, KubeConfig

__all__ = ["ExecResult", "run_exec"]

_STOP_WITHIN = 5.0
"""How long a cancelled plugin has to exit after SIGTERM before it is killed."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What an exec plugin returned: a token or a client certificate, and until when."""

    token: str | None
    client_certificate_data: bytes | None
    client_key_data: bytes | None
    expires_at: float | None  # the event loop's time (anyio.current_time)

    def __repr__(self) -> str:
        return f"ExecResult(expires_at={self.expires_at!r})"


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:  # pragma: no cover - no file descriptor 0 at all
        return False


def _interactive(plugin: ExecConfig, where: str) -> bool:
    """Whether the plugin gets this process's terminal, as client-go decides it: `Never`
    never; `IfAvailable` when standard input is a terminal; `Always` requires one."""
    if plugin.interactive_mode == "Never":
        return False
    terminal = _stdin_is_terminal()
    if plugin.interactive_mode == "Always" and not terminal:
        raise KubeConfigError(
            f"{where} needs an interactive terminal (interactiveMode: Always), but standard "
            f"input is not a terminal; set interactiveMode: Never or IfAvailable, or configure "
            f"the plugin to run without one"
        )
    return terminal


def _exec_info(plugin: ExecConfig, config: KubeConfig, interactive: bool) -> str:
    spec: dict[str, Any] = {"interactive": interactive}
    if plugin.provide_cluster_info:
        cluster: dict[str, Any] = {
            "server": config.server,
            "insecure-skip-tls-verify": config.insecure_skip_tls_verify,
        }
        if config.tls_server_name:
            cluster["tls-server-name"] = config.tls_server_name
        if config.proxy_url:
            cluster["proxy-url"] = config.proxy_url
        if config.certificate_authority_data:
            cluster["certificate-authority-data"] = base64.b64encode(
                config.certificate_authority_data
            ).decode()
        if plugin.cluster_config is not None:
            cluster["config"] = json.loads(plugin.cluster_config)
        spec["cluster"] = cluster
    return json.dumps({"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec})


async def run_exec(plugin: ExecConfig, config: KubeConfig) -> ExecResult:
    where = f"exec plugin {plugin.command!r} ({config.source})"
    interactive = _interactive(plugin, where)
    command = plugin.command
    if os.sep in command and plugin.base_dir is not None and not os.path.isabs(command):
        command = str(plugin.base_dir / command)
    env = dict(os.environ)
    env.update(dict(plugin.env))
    env["KUBERNETES_EXEC_INFO"] = _exec_info(plugin, config, interactive)
    try:
        # as kubectl: the terminal only when interactive; the plugin's standard error is
        # this process's (its messages are for the user, never read or logged by us)
        returncode, stdout = await _run([command, *plugin.args], env, interactive=interactive)
    except FileNotFoundError:
        hint = f" {plugin.install_hint.strip()}" if plugin.install_hint else ""
        raise KubeConfigError(f"{where}: the command was not found.{hint}") from None
    except PermissionError:
        raise KubeConfigError(
            f"{where}: the command is not executable; make it so (chmod +x) or fix the path"
        ) from None
    if returncode != 0:
        raise KubeConfigError(f"{where} exited with status {returncode}; run it by hand to see why")
    return _parse_exec_output(stdout, plugin, where)


async def _run(argv: list[str], env: dict[str, str], *, interactive: bool) -> tuple[int, bytes]:
    """Run `argv` to its end: its exit status and what it printed on standard output.

    Cancelled, the process is asked to stop (SIGTERM) and killed if it has not within
    `_STOP_WITHIN` seconds. Raises `OSError` when it cannot be started."""
    process = await anyio.open_process(
        argv,
        env=env,
        stdin=None if interactive else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,
    )
    stdout = process.stdout
    assert stdout is not None
    try:
        chunks = [chunk async for chunk in stdout]
        return await process.wait(), b"".join(chunks)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(_STOP_WITHIN):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await stdout.aclose()


def _parse_exec_output(stdout: bytes, plugin: ExecConfig, where: str) -> ExecResult:
    try:
        credential = as_mapping(json.loads(stdout))
    except ValueError:
        credential = None
    if credential is None or credential.get("kind") != "ExecCredential":
        raise KubeConfigError(
            f"{where} did not print an ExecCredential (JSON with kind: ExecCredential)"
        )
    if credential.get("apiVersion") != plugin.api_version:
        raise KubeConfigError(
            f"{where} printed an ExecCredential of apiVersion "
            f"{credential.get('apiVersion')!r}, expected {plugin.api_version}"
        )
    status = as_mapping(credential.get("status"))
    if status is None:
        raise KubeConfigError(f"{where}: the ExecCredential has no status")
    token = status.get("token")
    cert = status.get("clientCertificateData")
    key = status.get("clientKeyData")
    if not token and not (cert and key):
        raise KubeConfigError(
            f"{where}: the ExecCredential status has neither a token nor "
            f"clientCertificateData and clientKeyData"
        )
    if cert and key:
        # parsed now, so that a bad one is refused here (naming the field) and not cached
        check_certificates(
            ca=None,
            cert=str(cert).encode(),
            key=str(key).encode(),
            ca_where="",
            cert_where=f"{where}: status.clientCertificateData",
            key_where=f"{where}: status.clientKeyData",
        )
    expires_at = None
    stamp = status.get("expirationTimestamp")
    if isinstance(stamp, str) and stamp:
        try:
            when = dt.datetime.fromisoformat(stamp)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:  # RFC 3339 always has an offset
            raise KubeConfigError(f"{where}: expirationTimestamp is not an RFC 3339 time")
        remaining = (when - dt.datetime.now(dt.UTC)).total_seconds()
        expires_at = anyio.current_time() + remaining
    return ExecResult(
        token=str(token) if token else None,
        client_certificate_data=str(cert).encode() if cert else None,
        client_key_data=str(key).encode() if key else None,
        expires_at=expires_at,
    )
