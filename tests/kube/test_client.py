"""`KubeClient` over `httpx.MockTransport`: JSON, typed errors, watch, warnings, credentials."""

from __future__ import annotations

import base64
import gc
import json
import logging
import warnings
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from trio_election._kube import (
    AlreadyExistsError,
    ApiConnectionError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    KubeClient,
    KubeConfig,
    KubeConfigError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from trio_election._kube._proxy import no_proxy_matches
from trio_election._kube._watch import WatchEvent
from trio_election._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .conftest import Pki

SERVER = "https://api.test:6443"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class Recorder:
    """A mock API: answers each request with `answer(request)` and keeps every request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def authorizations(self) -> list[str | None]:
        return [r.headers.get("authorization") for r in self.requests]


def ok(body: object = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(
        200, json=body if body is not None else {"kind": "Lease"}
    )


async def test_request_returns_the_decoded_json() -> None:
    lease = {"kind": "Lease", "metadata": {"name": "x", "resourceVersion": "7"}}
    api = Recorder(ok(lease))
    async with KubeClient(
        KubeConfig(server=SERVER, namespace="ns"), transport=api.transport
    ) as client:
        assert client.namespace == "ns"
        got = await client.request(
            "PATCH",
            f"{LEASES}/x",
            params={"fieldManager": "me"},
            json={"spec": {"holderIdentity": "a"}},
            content_type="application/merge-patch+json",
        )
    assert got == lease
    [request] = api.requests
    assert request.method == "PATCH"
    assert str(request.url) == f"{SERVER}{LEASES}/x?fieldManager=me"
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(request.content) == {"spec": {"holderIdentity": "a"}}
    assert request.headers["user-agent"] == f"trio-election/{__version__}"
    assert request.headers["accept"] == "application/json"


async def test_json_body_defaults_to_application_json() -> None:
    api = Recorder(ok())
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        await client.request("POST", LEASES, json={"kind": "Lease"})
    assert api.requests[0].headers["content-type"] == "application/json"


async def test_success_that_is_not_json() -> None:
    api = Recorder(lambda _r: httpx.Response(200, text="<html>proxy login</html>"))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ApiConnectionError, match="not JSON"):
            await client.request("GET", f"{LEASES}/x")


@pytest.mark.parametrize(
    ("code", "reason", "error_type"),
    [
        (404, "NotFound", NotFoundError),
        (409, "Conflict", ConflictError),
        (409, "AlreadyExists", AlreadyExistsError),
        (410, "Expired", GoneError),
        (401, "Unauthorized", UnauthorizedError),
        (403, "Forbidden", ForbiddenError),
        (422, "Invalid", InvalidError),
        (429, "TooManyRequests", TooManyRequestsError),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
    ],
)
async def test_typed_errors_from_status_bodies(
    code: int, reason: str, error_type: type[ApiError]
) -> None:
    message = f"the message for {code}"
    api = Recorder(lambda _r: httpx.Response(code, json=status_body(code, reason, message)))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ApiError) as info:
            await client.request("PUT", f"{LEASES}/x", json={})
    assert type(info.value) is error_type
    assert info.value.status == code
    assert info.value.reason == reason
    assert info.value.message == message
    assert message in str(info.value)


async def test_already_exists_is_a_conflict() -> None:
    body = status_body(409, "AlreadyExists", 'leases.coordination.k8s.io "x" already exists')
    api = Recorder(lambda _r: httpx.Response(409, json=body))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ConflictError) as info:
            await client.request("POST", LEASES, json={})
    assert isinstance(info.value, AlreadyExistsError)


async def test_forbidden_names_verb_resource_and_rule() -> None:
    message = (
        'leases.coordination.k8s.io "x" is forbidden: User "system:serviceaccount:ns:app" '
        'cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "ns"'
    )
    api = Recorder(lambda _r: httpx.Response(403, json=status_body(403, "Forbidden", message)))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ForbiddenError) as info:
            await client.request("PUT", f"{LEASES}/x", json={})
    error = info.value
    assert (error.verb, error.resource) == ("update", "leases")
    text = str(error)
    assert 'resources: ["leases"]' in text
    assert 'verbs: ["update"]' in text
    assert 'apiGroups: ["coordination.k8s.io"]' in text
    assert 'to a Role in namespace "ns"' in text


NS_ROLE = 'to a Role in namespace "ns"'
CLUSTER_ROLE = "to a ClusterRole"


@pytest.mark.parametrize(
    ("method", "path", "params", "verb", "resource", "group", "role"),
    [
        ("GET", "/api/v1/namespaces/ns/configmaps/x", None, "get", "configmaps", "", NS_ROLE),
        ("POST", "/api/v1/namespaces/ns/endpoints", None, "create", "endpoints", "", NS_ROLE),
        ("GET", LEASES, {"watch": "1"}, "watch", "leases", "coordination.k8s.io", NS_ROLE),
        ("GET", LEASES, None, "list", "leases", "coordination.k8s.io", NS_ROLE),
        ("PATCH", f"{LEASES}/x", None, "patch", "leases", "coordination.k8s.io", NS_ROLE),
        ("DELETE", LEASES, None, "deletecollection", "leases", "coordination.k8s.io", NS_ROLE),
        ("PUT", "/api/v1/namespaces/ns/pods/p/status", None, "update", "pods/status", "", NS_ROLE),
        # cluster-scoped: a namespace object itself, and a list across all namespaces
        ("GET", "/api/v1/namespaces/ns", None, "get", "namespaces", "", CLUSTER_ROLE),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/leases",
            None,
            "list",
            "leases",
            "coordination.k8s.io",
            CLUSTER_ROLE,
        ),
    ],
)
async def test_forbidden_without_a_message_uses_the_request(
    method: str,
    path: str,
    params: dict[str, str] | None,
    verb: str,
    resource: str,
    group: str,
    role: str,
) -> None:
    api = Recorder(lambda _r: httpx.Response(403, json=status_body(403, "Forbidden", "")))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ForbiddenError) as info:
            await client.request(method, path, params=params)
    assert (info.value.verb, info.value.resource) == (verb, resource)
    assert f'apiGroups: ["{group}"]' in str(info.value)
    assert f'resources: ["{resource}"]' in str(info.value)
    assert f'verbs: ["{verb}"]' in str(info.value)
    assert role in str(info.value)


async def test_forbidden_names_the_group_from_the_message() -> None:
    message = (
        'deployments.apps "x" is forbidden: User "u" cannot get resource "deployments" in API '
        'group "apps" in the namespace "ns"'
    )
    api = Recorder(lambda _r: httpx.Response(403, json=status_body(403, "Forbidden", message)))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ForbiddenError) as info:
            await client.request("GET", "/apis/apps/v1/namespaces/ns/deployments/x")
    assert 'apiGroups: ["apps"]' in str(info.value)


async def test_too_many_requests_retry_after() -> None:
    body = status_body(429, "TooManyRequests", "slow down")
    api = Recorder(lambda _r: httpx.Response(429, json=body, headers={"Retry-After": "3"}))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(TooManyRequestsError) as info:
            await client.request("GET", f"{LEASES}/x")
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("code", "error_type", "reason"),
    [
        (502, ServerError, "BadGateway"),
        (503, ServerError, "ServiceUnavailable"),
        (504, ServerError, "Timeout"),
        (404, NotFoundError, "NotFound"),
        (400, ApiError, "BadRequest"),
    ],
)
async def test_error_bodies_that_are_not_json(
    code: int, error_type: type[ApiError], reason: str
) -> None:
    # e.g. a load balancer's error page: typed by status, the reason as the apiserver's
    api = Recorder(lambda _r: httpx.Response(code, text="upstream connect error"))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(error_type) as info:
            await client.request("GET", f"{LEASES}/x")
    assert type(info.value) is error_type
    assert (info.value.status, info.value.reason) == (code, reason)
    assert "upstream connect error" in str(info.value)


async def test_connection_failure_names_the_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with KubeClient(
        KubeConfig(server=SERVER), transport=httpx.MockTransport(refuse)
    ) as client:
        with pytest.raises(ApiConnectionError, match=r"api\.test:6443"):
            await client.request("GET", f"{LEASES}/x")
        with pytest.raises(ApiConnectionError, match=r"api\.test:6443"):
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover


# --- watch ------------------------------------------------------------------------------


def watch_stream(*events: dict[str, Any]) -> bytes:
    lines = [json.dumps(e) for e in events]
    return ("\n".join([lines[0], "", *lines[1:]]) + "\n").encode()


async def test_watch_yields_events() -> None:
    first: dict[str, Any] = {"metadata": {"name": "x", "resourceVersion": "1"}}
    second: dict[str, Any] = {"metadata": {"name": "x", "resourceVersion": "2"}}
    added = {"type": "ADDED", "object": first}
    modified = {"type": "MODIFIED", "object": second}
    api = Recorder(lambda _r: httpx.Response(200, content=watch_stream(added, modified)))
    params = {"watch": "1", "resourceVersion": "0"}
    async with (
        KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client,
        aclosing(client.watch(LEASES, params=params)) as events,
    ):
        got = [event async for event in events]
    assert got == [WatchEvent("ADDED", first), WatchEvent("MODIFIED", second)]
    assert api.requests[0].url.params["watch"] == "1"
    assert api.requests[0].url.params["resourceVersion"] == "0"


async def test_watch_error_status_is_typed() -> None:
    api = Recorder(lambda _r: httpx.Response(410, json=status_body(410, "Expired", "too old")))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(GoneError):
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover


async def test_watch_forbidden_names_the_watch_verb() -> None:
    api = Recorder(lambda _r: httpx.Response(403, json=status_body(403, "Forbidden", "")))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with pytest.raises(ForbiddenError) as info:
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover
    assert info.value.verb == "watch"


async def test_watch_line_that_is_not_json() -> None:
    api = Recorder(
        lambda _r: httpx.Response(200, content=b'{"type": "ADDED", "object": {}}\nnot json\n')
    )
    async with (
        KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client,
        aclosing(client.watch(LEASES, params={"watch": "1"})) as events,
    ):
        assert await events.__anext__() == WatchEvent("ADDED", {})
        with pytest.raises(ApiConnectionError, match="not JSON"):
            await events.__anext__()


# --- warnings ---------------------------------------------------------------------------


async def test_each_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    deprecated = (
        '299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"'
    )
    other = '299 - "something else"'
    # two warnings folded into one header line on the way, one with an escaped quote
    folded = '299 - "third, with a comma", 299 - "fourth \\"quoted\\""'

    def answer(request: httpx.Request) -> httpx.Response:
        headers = [("Warning", deprecated)]
        if request.url.params.get("twice"):
            headers.append(("Warning", other))
        if request.url.params.get("folded"):
            headers.append(("Warning", folded))
        return httpx.Response(200, json={}, headers=headers)

    api = Recorder(answer)
    caplog.set_level(logging.WARNING, logger="trio_election.kube")
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        for params in ({}, {}, {"twice": "1"}, {"twice": "1"}, {"folded": "1"}, {"folded": "1"}):
            await client.request("GET", "/api/v1/namespaces/ns/endpoints/x", params=params)
    texts = [r.getMessage() for r in caplog.records if r.name == "trio_election.kube"]
    prefix = f"{SERVER}: the API server warns: "
    assert texts == [
        prefix + "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
        prefix + "something else",
        prefix + "third, with a comma",
        prefix + 'fourth "quoted"',
    ]


# --- credentials ------------------------------------------------------------------------


async def test_static_token_and_no_retry_on_401() -> None:
    body = status_body(401, "Unauthorized", "Unauthorized")
    api = Recorder(lambda _r: httpx.Response(401, json=body))
    config = KubeConfig(server=SERVER, token="static-SECRET")
    async with KubeClient(config, transport=api.transport) as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.request("GET", f"{LEASES}/x")
    assert api.authorizations() == ["Bearer static-SECRET"]
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(client)


async def test_basic_auth() -> None:
    api = Recorder(ok())
    config = KubeConfig(server=SERVER, username="bob", password="pw-SECRET")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
    expected = base64.b64encode(b"bob:pw-SECRET").decode()
    assert api.authorizations() == [f"Basic {expected}"]
    assert "SECRET" not in repr(config)


async def test_no_credentials_sends_no_authorization() -> None:
    api = Recorder(ok())
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
    assert api.authorizations() == [None]


def token_file_config(tmp_path: Path, token: str) -> KubeConfig:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return KubeConfig(server=SERVER, token_file=path, token="stale-static")


async def test_token_file_is_reread_within_a_minute(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = token_file_config(tmp_path, "first-SECRET")
    api = Recorder(ok())
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
        assert config.token_file is not None
        config.token_file.write_text("second-SECRET\n")
        await trio.sleep(60)
        await client.request("GET", f"{LEASES}/x")
    assert api.authorizations() == ["Bearer first-SECRET", "Bearer second-SECRET"]
    assert "SECRET" not in caplog.text
    assert "SECRET" not in repr(config)


def refuse_unless(token: str) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") == f"Bearer {token}":
            return httpx.Response(200, json={"kind": "Lease"})
        return httpx.Response(401, json=status_body(401, "Unauthorized", "Unauthorized"))

    return answer


async def test_token_file_is_reread_on_401(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = token_file_config(tmp_path, "old")
    api = Recorder(refuse_unless("old"))
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
        assert config.token_file is not None
        config.token_file.write_text("new")
        api.answer = refuse_unless("new")
        await trio.sleep(1)  # well within the minute: only the 401 makes it look again
        assert await client.request("GET", f"{LEASES}/x") == {"kind": "Lease"}
    assert api.authorizations() == ["Bearer old", "Bearer old", "Bearer new"]


async def test_token_file_401_is_retried_once_then_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = token_file_config(tmp_path, "refused-SECRET")
    api = Recorder(refuse_unless("something else"))
    async with KubeClient(config, transport=api.transport) as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.request("GET", f"{LEASES}/x")
        assert len(api.requests) == 2
        with pytest.raises(UnauthorizedError):
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover
        assert len(api.requests) == 4
    assert "SECRET" not in str(info.value)


async def test_watch_rereads_the_token_on_401(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = token_file_config(tmp_path, "old")
    assert config.token_file is not None
    accepted = "old"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {accepted}":
            return httpx.Response(401, json=status_body(401, "Unauthorized", "Unauthorized"))
        if request.url.params.get("watch"):
            return httpx.Response(200, content=b'{"type": "ADDED", "object": {}}\n')
        return httpx.Response(200, json={})

    api = Recorder(answer)
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
        config.token_file.write_text("new")
        accepted = "new"
        async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
            got = [event async for event in events]
    assert got == [WatchEvent("ADDED", {})]
    assert api.authorizations() == ["Bearer old", "Bearer old", "Bearer new"]


async def test_in_cluster_token_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    (folder / "token").write_text("bound-1")
    (folder / "namespace").write_text("prod")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("TRIO_ELECTION_SERVICE_ACCOUNT_DIR", str(folder))
    api = Recorder(ok())
    async with KubeClient(KubeConfig.load(), transport=api.transport) as client:
        assert client.namespace == "prod"
        await client.request("GET", f"{LEASES}/x")
        (folder / "token").write_text("bound-2")
        await trio.sleep(61)
        await client.request("GET", f"{LEASES}/x")
    assert api.authorizations() == ["Bearer bound-1", "Bearer bound-2"]
    assert str(api.requests[0].url).startswith("https://10.0.0.1/")


async def test_token_file_that_vanished_keeps_the_last_token(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = token_file_config(tmp_path, "kept-SECRET")
    api = Recorder(ok())
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
        assert config.token_file is not None
        config.token_file.unlink()
        await trio.sleep(61)
        await client.request("GET", f"{LEASES}/x")
    assert api.authorizations() == ["Bearer kept-SECRET", "Bearer kept-SECRET"]
    assert str(config.token_file) in caplog.text
    assert "SECRET" not in caplog.text


async def test_missing_token_file(tmp_path: Path) -> None:
    config = KubeConfig(server=SERVER, token_file=tmp_path / "absent", source="kubeconfig K")
    async with KubeClient(config, transport=Recorder(ok()).transport) as client:
        with pytest.raises(KubeConfigError, match="token file") as info:
            await client.request("GET", f"{LEASES}/x")
    assert str(tmp_path / "absent") in str(info.value)


async def test_stopping_a_watch_leaves_no_generator_behind() -> None:
    events = [{"type": "ADDED", "object": {"n": n}} for n in range(3)]
    api = Recorder(lambda _r: httpx.Response(200, content=watch_stream(*events)))
    async with KubeClient(KubeConfig(server=SERVER), transport=api.transport) as client:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as stream:
                async for event in stream:
                    assert event == WatchEvent("ADDED", {"n": 0})
                    break
            gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_a_given_transport_carries_every_request_even_with_a_proxy() -> None:
    api = Recorder(ok())
    config = KubeConfig(server=SERVER, proxy_url="http://127.0.0.1:9")
    async with KubeClient(config, transport=api.transport) as client:
        assert await client.request("GET", f"{LEASES}/x") == {"kind": "Lease"}
    assert len(api.requests) == 1


def test_socks_proxy_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trio_election._kube._proxy.socks_installed", lambda: False)
    config = KubeConfig(server=SERVER, proxy_url="socks5://user:pw-SECRET@127.0.0.1:1080")
    with pytest.raises(KubeConfigError, match="SOCKS proxy") as info:
        KubeClient(config)
    assert "pip install 'trio-election[socks]'" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_a_config_built_directly_is_checked_too(pki: Pki) -> None:
    with pytest.raises(KubeConfigError, match="proxy-url must be SCHEME://HOST"):
        KubeClient(KubeConfig(server=SERVER, proxy_url="ftp://proxy.test:21"))
    insecure = KubeConfig(
        server=SERVER, insecure_skip_tls_verify=True, certificate_authority_data=pki.ca_pem
    )
    with pytest.raises(KubeConfigError, match="insecure-skip-tls-verify is on"):
        KubeClient(insecure)


async def test_server_path_prefix_is_kept() -> None:
    api = Recorder(ok())
    config = KubeConfig(server="https://rancher.test/k8s/clusters/c-1")
    async with KubeClient(config, transport=api.transport) as client:
        await client.request("GET", f"{LEASES}/x")
    assert str(api.requests[0].url) == f"https://rancher.test/k8s/clusters/c-1{LEASES}/x"


def test_server_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(KubeConfigError, match=r"server must be https://HOST"):
        KubeClient(KubeConfig(server="k8s.test:6443"))


def echo(request: httpx.Request) -> httpx.Response:
    """A misbehaving proxy that echoes the request's headers in its error page."""
    lines = [f"{name}: {value}" for name, value in request.headers.items()]
    return httpx.Response(502, text="Bad gateway. You sent:\n" + "\n".join(lines))


@pytest.mark.parametrize(
    "config",
    [
        KubeConfig(server=SERVER, token="tok-SECRET"),
        KubeConfig(server=SERVER, username="bob", password="pw-SECRET"),
    ],
    ids=["token", "basic"],
)
async def test_credentials_echoed_in_an_error_body_are_masked(config: KubeConfig) -> None:
    api = Recorder(echo)
    async with KubeClient(config, transport=api.transport) as client:
        with pytest.raises(ServerError) as info:
            await client.request("GET", f"{LEASES}/x")
        with pytest.raises(ServerError) as watch_info:
            async with aclosing(client.watch(LEASES, params={"watch": "1"})) as events:
                async for _event in events:
                    pass  # pragma: no cover
    scheme, _, sent = api.requests[0].headers["authorization"].lower().partition(" ")
    sent = api.requests[0].headers["authorization"].partition(" ")[2]
    for error in (info.value, watch_info.value):
        assert "You sent" in error.message  # the body is still shown...
        assert "SECRET" not in str(error)  # ...but not the credentials
        assert sent not in str(error)
        assert f"authorization: {scheme} ***" in error.message.lower()


@pytest.mark.parametrize(
    ("server", "no_proxy", "bypassed"),
    [
        ("https://kube.example.com", "example.com", True),
        ("https://example.com", "example.com", True),
        ("https://example.com", ".example.com", False),  # subdomains only
        ("https://a.kube.example.com:6443", ".example.com", True),
        ("https://notexample.com", "example.com", False),
        ("https://kube.example.com:6443", "kube.example.com:443", False),
        ("https://kube.example.com:6443", "kube.example.com:6443", True),
        ("https://KUBE.example.com", " Kube.Example.Com ", True),
        ("https://10.1.2.3", "10.0.0.0/8", True),
        ("https://10.1.2.3", "10.1.2.4", False),
        ("https://[fd00::1]:6443", "fd00::/8", True),
        ("https://kube.example.com", "", False),
        ("https://kube.example.com", "a.com, *", True),
    ],
)
def test_no_proxy_as_go_reads_it(server: str, no_proxy: str, bypassed: bool) -> None:
    """NO_PROXY's rules are Go's (client-go's): a domain covers its subdomains, a leading
    dot the subdomains only, IPs and CIDR ranges, an optional port, and ``*``."""
    assert no_proxy_matches(server, no_proxy) is bypassed


async def test_a_server_never_reached_says_so_and_names_where_it_came_from(
    tmp_path: Path,
) -> None:
    """A mistyped port looks like an outage unless the error says the server never answered."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
        "clusters: [{name: c, cluster: {server: 'https://api.test:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: dev, context: {cluster: c, user: u}}]\n"
    )
    answering = True

    def handle(request: httpx.Request) -> httpx.Response:
        if not answering:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"kind": "Lease"})

    config = KubeConfig.load(path)
    answering = False
    async with KubeClient(config, transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(ApiConnectionError) as never:
            await client.request("GET", f"{LEASES}/x")
        answering = True
        await client.request("GET", f"{LEASES}/x")
        answering = False
        with pytest.raises(ApiConnectionError) as later:
            await client.request("GET", f"{LEASES}/x")
    assert str(never.value) == (
        "cannot talk to https://api.test:6443: ConnectError: connection refused; it has not "
        f"answered once since this client started: check the address and port (the server "
        f"is named by kubeconfig {path}, context dev), and that the API server runs"
    )
    assert (
        str(later.value) == "cannot talk to https://api.test:6443: ConnectError: connection refused"
    )
