"""Reading kubeconfig files: YAML, merging several as kubectl does, one context's settings.

Every error names the file, the entry and the field, and says what to do.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, final

import yaml

from ._errors import KubeConfigError
from ._json import as_list, as_mapping
from ._tls import check_certificates, check_pem
from ._urls import check_proxy_url, check_server_url

__all__ = ["ExecConfig", "Settings", "from_files"]


@final
@dataclass(frozen=True, slots=True)
class ExecConfig:
    """A `client.authentication.k8s.io` exec credential plugin (`users[].user.exec`)."""

    command: str
    api_version: str = "client.authentication.k8s.io/v1"
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    install_hint: str = ""
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"
    base_dir: Path | None = None
    cluster_config: str | None = None
    """The cluster's `client.authentication.k8s.io/exec` extension (JSON text), passed to the
    plugin as `spec.cluster.config` with `provide_cluster_info`."""

    def __repr__(self) -> str:
        # arguments and env values may hold secrets (e.g. --oidc-client-secret=...)
        names = ", ".join(name for name, _ in self.env)
        return (
            f"ExecConfig(command={self.command!r}, api_version={self.api_version!r}, "
            f"args=<{len(self.args)} hidden>, env=<values of [{names}] hidden>, "
            f"interactive_mode={self.interactive_mode!r}, "
            f"provide_cluster_info={self.provide_cluster_info!r})"
        )


class Settings(TypedDict):
    """What one context of a kubeconfig says: the keyword arguments of a `KubeConfig`."""

    server: str
    namespace: str
    certificate_authority_data: bytes | None
    insecure_skip_tls_verify: bool
    tls_server_name: str | None
    proxy_url: str | None
    token: str | None
    token_file: Path | None
    client_certificate_data: bytes | None
    client_key_data: bytes | None
    username: str | None
    password: str | None
    exec: ExecConfig | None
    source: str
    certificate_authority_source: str


def _load_yaml(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        hint = "check the path given" if explicit else "check $KUBECONFIG"
        raise KubeConfigError(f"kubeconfig {path} does not exist: {hint}") from None
    except OSError as exc:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KubeConfigError(
            f"kubeconfig {path} is not UTF-8 text: point to a kubeconfig YAML file"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise KubeConfigError(
            f"kubeconfig {path} is not valid YAML{where}: {problem}; fix the file"
        ) from None
    if data is None:
        return {}
    mapping = as_mapping(data)
    if mapping is None:
        raise KubeConfigError(f"kubeconfig {path} must be a YAML mapping (a Config object)")
    return mapping


@dataclass(slots=True)
class _Merged:
    current_context: str = ""
    current_from: Path | None = None
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(
        default_factory=dict[str, tuple[dict[str, Any], Path]]
    )
    users: dict[str, tuple[dict[str, Any], Path]] = field(
        default_factory=dict[str, tuple[dict[str, Any], Path]]
    )
    contexts: dict[str, tuple[dict[str, Any], Path]] = field(
        default_factory=dict[str, tuple[dict[str, Any], Path]]
    )


def _merge(paths: list[Path], explicit: bool) -> _Merged:
    merged = _Merged()
    for path in paths:
        data = _load_yaml(path, explicit)
        current = data.get("current-context")
        if isinstance(current, str) and current and not merged.current_context:
            merged.current_context, merged.current_from = current, path
        for key, target in (
            ("clusters", merged.clusters),
            ("users", merged.users),
            ("contexts", merged.contexts),
        ):
            entries = as_list(data.get(key) or [])
            if entries is None:
                raise KubeConfigError(f"kubeconfig {path}: {key} must be a list")
            inner = key[:-1]
            for raw_entry in entries:
                entry = as_mapping(raw_entry)
                name = None if entry is None else entry.get("name")
                if entry is None or not isinstance(name, str):
                    raise KubeConfigError(f"kubeconfig {path}: every entry of {key} needs a name")
                body = as_mapping(entry.get(inner) or {})
                if body is None:
                    raise KubeConfigError(
                        f"kubeconfig {path}: {key}[{name}].{inner} must be a mapping"
                    )
                target.setdefault(name, (body, path))  # first file wins
    return merged


def from_files(paths: list[Path], context: str | None, *, explicit: bool) -> Settings:
    """One context of the merged kubeconfig `paths` (the named one, else current-context),
    as the fields of a `KubeConfig`."""
    merged = _merge(paths, explicit)
    files = ", ".join(str(p) for p in paths)
    name = context or merged.current_context
    if not name:
        raise KubeConfigError(
            f"kubeconfig {files} has no current-context and no context was given: "
            f"set current-context (kubectl config use-context NAME), or name one: "
            f"KubeConfig.load(context=NAME), the command's --context NAME"
        )
    if name not in merged.contexts:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise KubeConfigError(f"context {name!r} is not in kubeconfig {files} (contexts: {known})")
    ctx, ctx_path = merged.contexts[name]
    cluster_name = ctx.get("cluster")
    user_name = ctx.get("user")
    if not isinstance(cluster_name, str) or cluster_name not in merged.clusters:
        raise KubeConfigError(
            f"kubeconfig {ctx_path}: context {name!r} names cluster {cluster_name!r}, which is "
            f"not defined in {files}"
        )
    cluster, cluster_path = merged.clusters[cluster_name]
    user: dict[str, Any] = {}
    user_path = ctx_path
    if user_name:
        if not isinstance(user_name, str) or user_name not in merged.users:
            raise KubeConfigError(
                f"kubeconfig {ctx_path}: context {name!r} names user {user_name!r}, which is "
                f"not defined in {files}"
            )
        user, user_path = merged.users[user_name]
    where_cluster = f"kubeconfig {cluster_path}, clusters[{cluster_name}].cluster"
    where_user = f"kubeconfig {user_path}, users[{user_name}].user"
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(f"{where_cluster}: no server; set server: https://HOST:PORT")
    check_server_url(server, f"{where_cluster}: server")
    namespace = ctx.get("namespace") or "default"
    ca = _data_or_file(cluster, "certificate-authority", cluster_path, where_cluster)
    if ca is not None:
        check_pem(ca, where_cluster, "CERTIFICATE")
    cert = _data_or_file(user, "client-certificate", user_path, where_user)
    key = _data_or_file(user, "client-key", user_path, where_user)
    if (cert is None) != (key is None):
        raise KubeConfigError(
            f"{where_user}: client-certificate and client-key must be given together"
        )
    if cert is not None and key is not None:
        check_pem(cert, where_user + " client-certificate", "CERTIFICATE")
        check_pem(key, where_user + " client-key", "PRIVATE KEY")
    check_certificates(
        ca=ca,
        cert=cert,
        key=key,
        ca_where=f"{where_cluster}.{_field(cluster, 'certificate-authority', cluster_path)}",
        cert_where=f"{where_user}.{_field(user, 'client-certificate', user_path)}",
        key_where=f"{where_user}.{_field(user, 'client-key', user_path)}",
    )
    token_file_path = _token_file(user, user_path, where_user)
    insecure = _opt_bool(cluster, "insecure-skip-tls-verify", where_cluster)
    if insecure and ca is not None:
        raise KubeConfigError(
            f"{where_cluster}: insecure-skip-tls-verify is true and a certificate-authority is "
            f"given (kubectl refuses this too); remove one of them"
        )
    token = _opt_str(user, "token", where_user)
    username = _opt_str(user, "username", where_user)
    password = _opt_str(user, "password", where_user)
    if (token is not None or token_file_path) and (username is not None or password is not None):
        raise KubeConfigError(
            f"{where_user}: both a token (token or tokenFile) and basic auth (username, "
            f"password) are given; only one is allowed (as in kubectl): remove one of them"
        )
    proxy_url = _opt_str(cluster, "proxy-url", where_cluster)
    if proxy_url is not None:
        check_proxy_url(proxy_url, f"{where_cluster}: proxy-url")
    return Settings(
        server=server.rstrip("/"),
        namespace=str(namespace),
        certificate_authority_data=ca,
        insecure_skip_tls_verify=insecure,
        tls_server_name=_opt_str(cluster, "tls-server-name", where_cluster),
        proxy_url=proxy_url,
        token=token,
        token_file=token_file_path,
        client_certificate_data=cert,
        client_key_data=key,
        username=username,
        password=password,
        exec=_exec(user.get("exec"), user_path, where_user, _exec_extension(cluster)),
        source=f"kubeconfig {files}, context {name}",
        certificate_authority_source=(
            f"{where_cluster}.{_field(cluster, 'certificate-authority', cluster_path)}"
            if ca is not None
            else f"the system trust store ({where_cluster} sets no certificate-authority)"
        ),
    )


EXEC_EXTENSION = "client.authentication.k8s.io/exec"
"""The cluster extension whose content an exec plugin gets as `spec.cluster.config`."""


def _exec_extension(cluster: dict[str, Any]) -> str | None:
    for raw in as_list(cluster.get("extensions")) or []:
        entry = as_mapping(raw)
        if entry is not None and entry.get("name") == EXEC_EXTENSION:
            return json.dumps(entry.get("extension"))
    return None


def _opt_bool(section: dict[str, Any], key: str, where: str) -> bool:
    # kubectl refuses a non-boolean here; bool("false") would turn the option on
    value = section.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise KubeConfigError(f"{where}: {key} must be true or false (unquoted), got {value!r}")
    return value


def _opt_str(section: dict[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeConfigError(f"{where}: {key} must be a string")
    return value


def _resolve(value: str, kubeconfig: Path) -> Path:
    path = Path(value).expanduser()
    # absolute: a token file is re-read later, maybe after the working directory changed
    return path if path.is_absolute() else kubeconfig.absolute().parent / path


def _token_file(user: dict[str, Any], path: Path, where: str) -> Path | None:
    """`tokenFile`, resolved, and readable now (it is read again while in use)."""
    value = _opt_str(user, "tokenFile", where)
    if value is None:
        return None
    token_file = _resolve(value, path)
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise KubeConfigError(
            f"{where}.tokenFile: cannot read {token_file}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise KubeConfigError(
            f"{where}.tokenFile: {token_file} is not UTF-8 text: it must hold the bearer token"
        ) from None
    if not token:
        raise KubeConfigError(f"{where}.tokenFile: {token_file} is empty")
    return token_file


def _field(section: dict[str, Any], key: str, path: Path) -> str:
    """Which field `_data_or_file` read `key` from, for messages: the data, or the file."""
    if section.get(f"{key}-data"):
        return f"{key}-data"
    file = section.get(key)
    return f"{key} ({_resolve(file, path)})" if isinstance(file, str) else key


def _data_or_file(section: dict[str, Any], key: str, path: Path, where: str) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        if not isinstance(data, str):
            raise KubeConfigError(f"{where}: {key}-data must be a base64 string")
        try:
            # Go's decoder (kubectl's) skips line breaks: wrapped data is valid there too
            return base64.b64decode(data.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise KubeConfigError(
                f"{where}: {key}-data is not valid base64; encode the PEM file with "
                f"`base64 -w0 FILE`"
            ) from None
    file = section.get(key)
    if file:
        if not isinstance(file, str):
            raise KubeConfigError(f"{where}: {key} must be a file path")
        target = _resolve(file, path)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise KubeConfigError(
                f"{where}: cannot read {key} file {target}: {exc.strerror}"
            ) from None
    return None


def _exec(
    raw: object, path: Path, where: str, cluster_config: str | None = None
) -> ExecConfig | None:
    if raw is None:
        return None
    section = as_mapping(raw)
    if section is None:
        raise KubeConfigError(f"{where}.exec must be a mapping")
    command = section.get("command")
    if not isinstance(command, str) or not command:
        raise KubeConfigError(f"{where}.exec: command is required")
    api_version = section.get("apiVersion") or ""
    if api_version not in (
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
    ):
        raise KubeConfigError(
            f"{where}.exec: apiVersion {api_version!r} is not supported; use "
            f"client.authentication.k8s.io/v1 or v1beta1"
        )
    mode = section.get("interactiveMode")
    if mode is None:
        if api_version.endswith("/v1"):
            raise KubeConfigError(
                f"{where}.exec: interactiveMode is required with {api_version} "
                f"(Never, IfAvailable or Always)"
            )
        mode = "IfAvailable"
    if mode not in ("Never", "IfAvailable", "Always"):
        raise KubeConfigError(
            f"{where}.exec: interactiveMode must be Never, IfAvailable or Always, got {mode!r}"
        )
    env_list = as_list(section.get("env") or [])
    env: list[tuple[str, str]] = []
    if env_list is None:
        raise KubeConfigError(f"{where}.exec.env must be a list of name/value pairs")
    for raw_item in env_list:
        item = as_mapping(raw_item)
        name = None if item is None else item.get("name")
        if item is None or not isinstance(name, str):
            raise KubeConfigError(f"{where}.exec.env entries need a name and a value")
        env.append((name, str(item.get("value", ""))))
    args = as_list(section.get("args") or [])
    if args is None:
        raise KubeConfigError(f"{where}.exec.args must be a list of strings")
    return ExecConfig(
        command=command,
        api_version=api_version,
        args=tuple(str(a) for a in args),
        env=tuple(env),
        install_hint=str(section.get("installHint") or ""),
        provide_cluster_info=_opt_bool(section, "provideClusterInfo", f"{where}.exec"),
        interactive_mode=str(mode),
        base_dir=path.absolute().parent,
        cluster_config=cluster_config,
    )
