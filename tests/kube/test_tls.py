"""TLS against real servers on loopback (real sockets and real time: no virtual clock)."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import ssl
import tempfile
import warnings
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from trio_election._kube import ApiConnectionError, KubeClient, KubeConfig, KubeConfigError

from ._loopback import (
    QUIET,
    QUIET_PATH,
    QUIET_WATCH_PATH,
    WATCH_PATH,
    connect_proxy,
    https_server,
    socks5_proxy,
)
from .conftest import SERVER_NAME, b64, kubeconfig, set_status, write_plugin

V1 = "client.authentication.k8s.io/v1"

if TYPE_CHECKING:
    import trustme

    from .conftest import Pki


async def test_server_verified_with_the_configured_ca(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert [r.path for r in server.requests] == ["/version"]
    assert server.requests[0].client_cn is None


async def test_verification_is_on_by_default(pki: Pki) -> None:
    async with (
        https_server(pki.server, pki.ca) as server,
        KubeClient(KubeConfig(server=server.url)) as client,
    ):
        with pytest.raises(ApiConnectionError, match=f"127.0.0.1:{server.port}"):
            await client.request("GET", "/version")
    assert server.requests == []


async def test_server_of_another_ca_is_refused(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(
            server=server.url, certificate_authority_data=pki.other_ca.cert_pem.bytes()
        )
        async with KubeClient(config) as client:
            with pytest.raises(ApiConnectionError) as info:
                await client.request("GET", "/version")
    assert server.url in str(info.value)
    assert "certificate verification failed" in str(info.value)
    assert server.requests == []


async def test_client_certificate_from_kubeconfig_files(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "client.crt").write_bytes(pki.client_cert_pem)
    (tmp_path / "client.key").write_bytes(pki.client_key_pem)
    async with https_server(pki.server, pki.ca) as server:
        path = kubeconfig(
            tmp_path / "kc",
            cluster={"server": server.url, "certificate-authority-data": b64(pki.ca_pem)},
            user={"client-certificate": "client.crt", "client-key": "client.key"},
        )
        async with KubeClient(KubeConfig.load(path)) as client:
            await client.request("GET", "/version")
    assert server.requests[0].client_cn == "alice"
    assert "authorization" not in server.requests[0].headers


async def test_client_certificate_from_an_exec_plugin(tmp_path: Path, pki: Pki) -> None:
    status = {
        "clientCertificateData": pki.client_cert_pem.decode(),
        "clientKeyData": pki.client_key_pem.decode(),
    }
    plugin = write_plugin(tmp_path / "bin", status, api_version="client.authentication.k8s.io/v1")
    async with https_server(pki.server, pki.ca) as server:
        path = kubeconfig(
            tmp_path / "kc",
            cluster={"server": server.url, "certificate-authority-data": b64(pki.ca_pem)},
            user={
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": str(plugin.path),
                    "interactiveMode": "Never",
                }
            },
        )
        async with KubeClient(KubeConfig.load(path)) as client:
            await client.request("GET", "/version")
            await client.request("GET", "/version")
    assert [r.client_cn for r in server.requests] == ["alice", "alice"]
    assert len(plugin.runs()) == 1


async def test_tls_server_name(pki: Pki) -> None:
    async with https_server(pki.named_server, pki.ca) as server:
        plain = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(plain) as client:
            with pytest.raises(ApiConnectionError):
                await client.request("GET", "/version")
        named = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, tls_server_name=SERVER_NAME
        )
        async with KubeClient(named) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert [r.sni for r in server.requests] == [SERVER_NAME]


async def test_proxy_url(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server, connect_proxy() as proxy:
        config = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, proxy_url=proxy.url
        )
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"CONNECT 127.0.0.1:{server.port}"]
    assert len(server.requests) == 1


async def test_socks5_proxy_url(pki: Pki) -> None:
    pytest.importorskip(
        "socksio", reason="needs the socks extra: pip install 'trio-election[socks]'"
    )
    async with https_server(pki.server, pki.ca) as server, socks5_proxy() as proxy:
        config = KubeConfig(
            server=server.url,
            certificate_authority_data=pki.ca_pem,
            proxy_url=proxy.url.replace("http://", "socks5://"),
        )
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"127.0.0.1:{server.port}"]
    assert len(server.requests) == 1


async def test_tls_server_name_through_a_proxy(pki: Pki) -> None:
    async with https_server(pki.named_server, pki.ca) as server, connect_proxy() as proxy:
        config = KubeConfig(
            server=server.url,
            certificate_authority_data=pki.ca_pem,
            tls_server_name=SERVER_NAME,
            proxy_url=proxy.url,
        )
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"CONNECT 127.0.0.1:{server.port}"]
    assert [r.sni for r in server.requests] == [SERVER_NAME]


async def test_insecure_accepts_any_server_with_one_warning(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_election.kube")
    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(
            server=server.url,
            certificate_authority_data=None,
            insecure_skip_tls_verify=True,
            token="insecure-SECRET",
        )
        async with KubeClient(config) as client:
            await client.request("GET", "/version")
            await client.request("GET", "/version")
    [warned] = [r.getMessage() for r in caplog.records if r.name == "trio_election.kube"]
    assert "insecure-skip-tls-verify" in warned
    assert "SECRET" not in caplog.text
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer insecure-SECRET"] * 2


async def test_connection_refused_names_the_server() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        async with KubeClient(KubeConfig(server=f"https://127.0.0.1:{port}")) as client:
            with pytest.raises(ApiConnectionError, match=f"https://127.0.0.1:{port}") as info:
                await client.request("GET", "/version")
    assert "Connection refused" in str(info.value)


async def test_ca_that_does_not_parse(pki: Pki) -> None:
    garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    config = KubeConfig(
        server="https://127.0.0.1:1", certificate_authority_data=garbage, source="kubeconfig K"
    )
    with pytest.raises(KubeConfigError, match="certificate authority does not parse") as info:
        KubeClient(config)
    assert "kubeconfig K" in str(info.value)


async def test_key_that_does_not_match(pki: Pki) -> None:
    other = pki.ca.issue_cert("bob@example.org")
    config = KubeConfig(
        server="https://127.0.0.1:1",
        client_certificate_data=pki.client_cert_pem,
        client_key_data=other.private_key_pem.bytes(),
        source="kubeconfig K",
    )
    with pytest.raises(KubeConfigError, match="client certificate and key") as info:
        KubeClient(config)
    key_line = other.private_key_pem.bytes().decode().splitlines()[1]
    assert key_line not in str(info.value)


async def test_watch_over_tls_stopped_early_cleans_up(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got: list[dict[str, object]] = []
                async with aclosing(client.watch(WATCH_PATH, params={"watch": "1"})) as events:
                    async for event in events:
                        got.append(event)
                        if len(got) == 2:
                            break
                gc.collect()
            assert await client.request("GET", "/version") == {"ok": True}
    assert got == [{"type": "ADDED", "object": {"n": n}} for n in range(2)]
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_exec_certificate_renewed_while_a_watch_runs(
    tmp_path: Path, pki: Pki, mock_clock: trio.testing.MockClock
) -> None:
    # real sockets: the mock clock never jumps by itself, only where the test says so
    def status(cert: trustme.LeafCert) -> dict[str, str]:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return {
            "clientCertificateData": cert.cert_chain_pems[0].bytes().decode(),
            "clientKeyData": cert.private_key_pem.bytes().decode(),
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    plugin = write_plugin(tmp_path / "bin", status(pki.client), api_version=V1)
    exec_section = {"apiVersion": V1, "command": str(plugin.path), "interactiveMode": "Never"}
    async with https_server(pki.server, pki.ca) as server:
        path = kubeconfig(
            tmp_path / "kc",
            cluster={"server": server.url, "certificate-authority-data": b64(pki.ca_pem)},
            user={"exec": exec_section},
        )
        async with (
            KubeClient(KubeConfig.load(path)) as client,
            aclosing(client.watch(WATCH_PATH, params={"watch": "1"})) as events,
        ):
            assert await events.__anext__() == {"type": "ADDED", "object": {"n": 0}}
            set_status(plugin, status(pki.ca.issue_cert("bob@example.org", common_name="bob")))
            mock_clock.jump(2 * 3600)
            assert await client.request("GET", "/version") == {"ok": True}
            assert await events.__anext__() == {"type": "ADDED", "object": {"n": 1}}
    assert [r.client_cn for r in server.requests] == ["alice", "bob"]
    assert len(plugin.runs()) == 2


async def test_more_watches_than_an_ordinary_connection_pool(pki: Pki) -> None:
    # each election keeps a watch open on the shared client; httpx's default pool (100
    # connections) would make the next request wait for a free connection forever
    async def follow(client: KubeClient, *, task_status: trio.TaskStatus[None]) -> None:
        async with aclosing(client.watch(WATCH_PATH, params={"watch": "1"})) as events:
            async for _event in events:
                task_status.started()
                await trio.sleep_forever()

    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client, trio.open_nursery() as nursery:
            with trio.fail_after(20):
                for _ in range(110):
                    await nursery.start(follow, client)
                assert await client.request("GET", "/version") == {"ok": True}
            nursery.cancel_scope.cancel()


async def test_a_server_that_never_answers_the_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    # no read timeout, but connecting (TCP and TLS handshake) is bounded
    monkeypatch.setattr("trio_election._kube._client.CONNECT_TIMEOUT", 0.5)

    async def mute(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, mute, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        async with KubeClient(KubeConfig(server=f"https://127.0.0.1:{port}")) as client:
            with trio.fail_after(10), pytest.raises(ApiConnectionError) as info:
                await client.request("GET", "/version")
        nursery.cancel_scope.cancel()
    assert f"https://127.0.0.1:{port}" in str(info.value)
    assert "ConnectTimeout" in str(info.value)


async def test_client_key_passes_through_a_private_file_that_is_removed(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ssl loads a client certificate from a file only: the key goes to a file only this
    # user can read, and is gone once loaded
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    seen: list[tuple[str, int, bool]] = []
    load = ssl.SSLContext.load_cert_chain

    def spy(context: ssl.SSLContext, certfile: str, *args: Any, **kwargs: Any) -> None:
        content = Path(certfile).read_bytes()
        seen.append((certfile, os.stat(certfile).st_mode & 0o777, pki.client_key_pem in content))
        load(context, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    config = KubeConfig(
        server="https://127.0.0.1:1",
        certificate_authority_data=pki.ca_pem,
        client_certificate_data=pki.client_cert_pem,
        client_key_data=pki.client_key_pem,
    )
    async with KubeClient(config):
        pass
    [(path, mode, has_key)] = seen
    assert Path(path).parent == temp
    assert (mode, has_key) == (0o600, True)
    assert list(temp.iterdir()) == []


async def test_no_read_timeout_for_quiet_answers_and_watches(pki: Pki) -> None:
    # a watch may be quiet for minutes, and a slow answer is the caller's to bound: neither
    # may fail on a read timeout of the client's own (httpx's default would be 5 s)
    got: list[dict[str, Any]] = []

    async def follow(client: KubeClient) -> None:
        async with aclosing(client.watch(QUIET_WATCH_PATH, params={"watch": "1"})) as events:
            got.extend([event async for event in events])

    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client, trio.open_nursery() as nursery:
            nursery.start_soon(follow, client)
            started = trio.current_time()
            assert await client.request("GET", QUIET_PATH) == {"ok": True}
    assert trio.current_time() - started >= QUIET
    assert got == [{"type": "ADDED", "object": {"n": n}} for n in range(2)]
