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

import trio_election as te
from trio_election._kube import (
    ApiConnectionError,
    KubeClient,
    KubeConfig,
    KubeConfigError,
    TLSVerificationError,
)
from trio_election._kube._watch import WatchEvent
from trio_election._kube_locks import LeaseLock

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
        with pytest.raises(TLSVerificationError, match=f"127.0.0.1:{server.port}") as info:
            await client.request("GET", "/version")
    assert server.requests == []
    message = str(info.value)
    assert "CA: the system trust store" in message
    assert "set certificate-authority (a PEM file) or certificate-authority-data" in message


async def test_server_of_another_ca_is_refused(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server:
        config = KubeConfig(
            server=server.url,
            certificate_authority_data=pki.other_ca.cert_pem.bytes(),
            token="tls-SECRET-token",
        )
        async with KubeClient(config) as client:
            with pytest.raises(TLSVerificationError) as info:
                await client.request("GET", "/version")
            with pytest.raises(TLSVerificationError):  # every time: it is not a passing fault
                async with aclosing(client.watch(WATCH_PATH, params={})) as events:
                    async for _ in events:
                        pass  # pragma: no cover
    message = str(info.value)
    assert message.startswith(f"TLS verification of the API server {server.url} failed: ")
    assert "certificate_authority_data given to KubeConfig" in message
    assert "That CA did not sign the server's certificate" in message
    assert "SECRET" not in message
    assert isinstance(info.value, KubeConfigError)
    assert not isinstance(info.value, (ApiConnectionError, te.LockError))
    assert server.requests == []


async def test_wrong_ca_in_a_kubeconfig_fails_elect_at_once(tmp_path: Path, pki: Pki) -> None:
    """The engine retries only LockErrors: a CA that cannot work ends `elect()` on entry."""
    (tmp_path / "ca.crt").write_bytes(pki.other_ca.cert_pem.bytes())
    async with https_server(pki.server, pki.ca) as server:
        path = kubeconfig(
            tmp_path / "kc",
            cluster={"server": server.url, "certificate-authority": "ca.crt"},
            user={"token": "kubeconfig-SECRET-token"},
            name="prod",
            current="prod",
        )
        config = KubeConfig.load(path)
        async with KubeClient(config) as client:
            with trio.fail_after(10), pytest.raises(TLSVerificationError) as info:
                async with te.elect(LeaseLock("default", "my-app", client), identity="a"):
                    pytest.fail("led through a server that failed verification")
    message = str(info.value)
    assert server.url in message
    assert f"clusters[prod].cluster.certificate-authority ({tmp_path / 'ca.crt'})" in message
    assert f"configuration: kubeconfig {path}, context prod" in message
    assert "SECRET" not in message
    assert server.requests == []


async def test_wrong_in_cluster_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    (folder / "token").write_text("pod-SECRET-token")
    (folder / "ca.crt").write_bytes(pki.other_ca.cert_pem.bytes())
    async with https_server(pki.server, pki.ca) as server:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
        async with KubeClient(KubeConfig.in_cluster(folder)) as client:
            with pytest.raises(TLSVerificationError) as info:
                await client.request("GET", "/version")
    message = str(info.value)
    assert f"CA: the in-cluster CA {folder / 'ca.crt'}" in message
    assert "configuration: in-cluster" in message
    assert "SECRET" not in message


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
            with pytest.raises(TLSVerificationError) as info:
                await client.request("GET", "/version")
        assert "mismatch" in str(info.value)
        assert "The certificate does not list 127.0.0.1" in str(info.value)
        assert "set tls-server-name" in str(info.value)
        wrong = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, tls_server_name="other.name"
        )
        async with KubeClient(wrong) as client:
            with pytest.raises(TLSVerificationError) as info:
                await client.request("GET", "/version")
        assert "tls-server-name: other.name" in str(info.value)
        assert "does not list tls-server-name other.name" in str(info.value)
        named = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, tls_server_name=SERVER_NAME
        )
        async with KubeClient(named) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert [r.sni for r in server.requests] == [SERVER_NAME]


async def test_expired_server_certificate(pki: Pki) -> None:
    old = pki.ca.issue_cert(
        "127.0.0.1",
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    async with https_server(old, pki.ca) as server:
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client:
            with pytest.raises(TLSVerificationError, match="expired") as info:
                await client.request("GET", "/version")
    assert "Renew the API server's certificate, or correct this machine's clock" in str(info.value)


async def test_proxy_url(pki: Pki) -> None:
    async with https_server(pki.server, pki.ca) as server, connect_proxy() as proxy:
        config = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, proxy_url=proxy.url
        )
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"CONNECT 127.0.0.1:{server.port}"]
    assert len(server.requests) == 1


async def test_https_proxy_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    async with https_server(pki.server, pki.ca) as server, connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"CONNECT 127.0.0.1:{server.port}"]


@pytest.mark.parametrize(
    ("no_proxy", "through_proxy"),
    [
        ("127.0.0.1", False),
        ("localhost, 127.0.0.0/8", False),
        ("*", False),
        ("{port}", True),  # a bare number names no host
        ("127.0.0.1:{port}", False),
        ("127.0.0.1:1", True),
        ("example.com,10.0.0.0/8", True),
    ],
)
async def test_no_proxy_from_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, no_proxy: str, through_proxy: bool
) -> None:
    async with https_server(pki.server, pki.ca) as server, connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", no_proxy.format(port=server.port))
        config = KubeConfig(server=server.url, certificate_authority_data=pki.ca_pem)
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert bool(proxy.connects) is through_proxy


async def test_proxy_url_wins_over_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with https_server(pki.server, pki.ca) as server, connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        config = KubeConfig(
            server=server.url, certificate_authority_data=pki.ca_pem, proxy_url=proxy.url
        )
        async with KubeClient(config) as client:
            assert await client.request("GET", "/version") == {"ok": True}
    assert proxy.connects == [f"CONNECT 127.0.0.1:{server.port}"]


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


async def test_connection_refused_is_retried_by_the_election(pki: Pki) -> None:
    """Unlike a certificate, a server that is not up yet can heal: `elect()` keeps trying."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = KubeConfig(
            server=f"https://127.0.0.1:{port}", certificate_authority_data=pki.ca_pem
        )
        async with KubeClient(config) as client:
            with trio.move_on_after(2) as waited:
                async with te.elect(
                    LeaseLock("default", "my-app", client), identity="a", retry_period=0.5
                ):
                    pytest.fail("led without a server")  # pragma: no cover
    assert waited.cancelled_caught


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
                got: list[WatchEvent] = []
                async with aclosing(client.watch(WATCH_PATH, params={"watch": "1"})) as events:
                    async for event in events:
                        got.append(event)
                        if len(got) == 2:
                            break
                gc.collect()
            assert await client.request("GET", "/version") == {"ok": True}
    assert got == [WatchEvent("ADDED", {"n": n}) for n in range(2)]
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
            assert await events.__anext__() == WatchEvent("ADDED", {"n": 0})
            set_status(plugin, status(pki.ca.issue_cert("bob@example.org", common_name="bob")))
            mock_clock.jump(2 * 3600)
            assert await client.request("GET", "/version") == {"ok": True}
            assert await events.__anext__() == WatchEvent("ADDED", {"n": 1})
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
    got: list[WatchEvent] = []

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
    assert got == [WatchEvent("ADDED", {"n": n}) for n in range(2)]
