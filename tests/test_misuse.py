"""Misuse of the library's faces: each gives one clear error at the call, naming the fix.

Nothing here hangs: a nested election, a call on a closed election, a wrong client, a bad
lock string or identity raise at once.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import pytest
import trio

import trio_election as te
from trio_election.kube import KubeConfig, KubeConfigError
from trio_election.testing import FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def no_kubeconfig(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration anywhere: no $KUBECONFIG, not in a pod, no ~/.kube/config."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


# ------------------------------------------------------------------ 1. nested elections
@pytest.mark.parametrize("lock_kind", ["memory", "lease"])
async def test_a_nested_election_of_the_same_lock_raises_naming_both(
    lock_kind: str, autojump_clock: trio.testing.MockClock
) -> None:
    api = FakeKubeApi() if lock_kind == "lease" else None
    lock: te.MemoryLock | str = te.MemoryLock() if api is None else "leases/default/x"
    client = None if api is None else api.client()
    with pytest.raises(RuntimeError) as raised:
        async with te.elect(lock, identity="outer", client=client):  # noqa: SIM117 - nested is the point
            async with te.elect(lock, identity="inner", client=client):
                pytest.fail("the inner election cannot lead")  # pragma: no cover
    message = str(raised.value)
    assert message.startswith("nested election: 'inner' on ")
    assert "inside the campaign or term of 'outer' on " in message
    assert "campaign from a separate task" in message


async def _lead_once(lock: te.MemoryLock, identity: str) -> None:
    async with te.elect(lock, identity=identity):
        pass


async def test_two_separate_tasks_may_campaign_for_one_lock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_lead_once, lock, "a")
        nursery.start_soon(_lead_once, lock, "b")
    async with te.elect(lock, identity="a"), te.elect(te.MemoryLock(), identity="a"):
        pass  # a second, different lock inside a term is fine


async def test_a_stand_by_started_from_inside_a_term_is_a_separate_candidate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    async with trio.open_nursery() as outer, te.elect(lock, identity="first"):
        # a task started inside the term, in a nursery that outlives it
        outer.start_soon(_lead_after, lock, lock.revision)
    assert lock.observe().holder is None


async def _lead_after(lock: te.MemoryLock, revision: int) -> None:
    while lock.revision == revision or lock.observe().holder is not None:
        await lock.wait_changed()
    await _lead_once(lock, "second")


async def test_the_same_identity_in_two_tasks_is_named_as_this_process(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    lock = te.MemoryLock()
    done = trio.Event()

    async def lead_until_done() -> None:
        async with te.elect(lock, identity="me"):
            await done.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lead_until_done)
        async with te.open_election(lock, identity="me") as second:
            while second.leader != "me":
                await lock.wait_changed()
            with trio.move_on_after(1):
                async with second.leading():
                    pytest.fail("a record of another election is waited out")  # pragma: no cover
        done.set()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        "memory/memory names our identity 'me', written by another election of this process "
        "with the same identity ('me' on memory/memory): waiting it out (give each election "
        "a unique identity)"
    )


async def test_a_record_from_another_process_with_our_identity_says_so(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    lock = te.MemoryLock()
    lock.put_record(te.LeaderRecord(holder_identity="me", lease_duration_seconds=15))
    async with te.open_election(lock, identity="me") as election:
        with trio.move_on_after(1):
            async with election.leading():
                pytest.fail("waited out")  # pragma: no cover
    assert "names our identity 'me' but no election of this process wrote it" in caplog.text


# ------------------------------------------------------------------ 3. lock strings first
@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("pods/a/b", "unknown resource 'pods'"),
        ("leases/a/b/c", "expected two or three parts separated by '/'"),
        ("leases/Default/My_App", "invalid namespace 'Default'"),
        ("leases/default/My_App", "invalid lock name 'My_App'"),
    ],
)
async def test_a_bad_lock_string_is_named_before_the_missing_kubeconfig(
    spec: str, why: str, no_kubeconfig: None
) -> None:
    with pytest.raises(te.ConfigError, match=f"^invalid lock {re.escape(repr(spec))}: ") as raised:
        async with te.elect(spec):
            pass  # pragma: no cover
    assert why in str(raised.value)
    assert "where <resource> is one of leases, endpoints" in str(raised.value)
    with pytest.raises(te.ConfigError, match=r"^invalid lock"):
        te.LeaderElector(te.ElectionConfig(lock=spec, callbacks=te.LeaderCallbacks(_work)))


async def _work(leadership: te.Leadership) -> None:
    pass  # pragma: no cover


async def test_a_missing_kubeconfig_names_parameters_that_exist(no_kubeconfig: None) -> None:
    with pytest.raises(KubeConfigError) as raised:
        async with te.elect("leases/default/x"):
            pass  # pragma: no cover
    message = str(raised.value)
    assert message.startswith("no Kubernetes configuration found")
    assert "kubeconfig=PATH" not in message
    assert message.endswith(
        "set KUBECONFIG=PATH, or pass client=KubeClient(KubeConfig.load(PATH)) "
        "(both from trio_election.kube)"
    )
    with pytest.raises(KubeConfigError, match=r"give the path: KubeConfig.load\(PATH\)$"):
        KubeConfig.load()


def test_lock_from_string_names_the_bad_string_then_the_missing_client() -> None:
    with pytest.raises(te.ConfigError, match=r"^invalid lock 'pods/a/b': unknown resource 'pods'"):
        te.lock_from_string("pods/a/b")
    with pytest.raises(TypeError, match=r"^lock_from_string\('leases/a/b', client\) needs client="):
        te.lock_from_string("leases/a/b")
    with pytest.raises(TypeError, match=r"a trio_election\.kube\.KubeClient"):
        te.lock_from_string("leases/a/b", "not a client")  # type: ignore[arg-type]


# ------------------------------------------------------------------ 4. the wrong protocol
@pytest.mark.parametrize(
    ("name", "face"),
    [
        ("elect", lambda: te.elect(te.MemoryLock())),
        ("open_election", lambda: te.open_election(te.MemoryLock())),
        ("open_shards", lambda: te.open_shards(te.MemoryLockGroup(), shards=2)),
    ],
    ids=["elect", "open_election", "open_shards"],
)
async def test_await_and_plain_with_say_use_async_with(
    name: str, face: Callable[[], object]
) -> None:
    manager: Any = face()
    expected = f"^{name}\\(\\.\\.\\.\\) cannot be used with `await`: use `async with {name}"
    with pytest.raises(TypeError, match=expected):
        await manager
    with pytest.raises(TypeError, match=f"with a plain `with`: use `async with {name}"), manager:
        pass  # pragma: no cover


async def test_leading_after_the_election_closed_is_a_clear_error() -> None:
    async with te.open_election(te.MemoryLock(), identity="a") as election:
        pass
    with pytest.raises(RuntimeError, match=r"^election.leading\(\) was called after the"):
        async with election.leading():
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match=r"^election.changes\(\) was called after the"):
        async for _ in election.changes():
            pass  # pragma: no cover


async def test_changes_running_when_the_election_closes_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str | None] = []
    ended = trio.Event()

    async def follow(election: te.Election) -> None:
        async for leader in election.changes():
            seen.append(leader)
        ended.set()

    async with trio.open_nursery() as nursery:
        async with te.open_election(te.MemoryLock(), identity="a") as election:
            nursery.start_soon(follow, election)
            await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(1):
            await ended.wait()
    assert seen == [None]


@pytest.mark.parametrize("face", ["elect", "open_election", "LeaderElector", "open_shards"])
async def test_a_client_that_is_not_a_kube_client_is_a_type_error(face: str) -> None:
    expected = "^client must be a trio_election.kube.KubeClient, .* got 'not a client'$"
    with pytest.raises(TypeError, match=expected):
        if face == "LeaderElector":
            config = te.ElectionConfig(
                lock="leases/default/x",
                client="not a client",  # type: ignore[arg-type]
                callbacks=te.LeaderCallbacks(_work),
            )
            await te.LeaderElector(config).run()
        elif face == "open_shards":
            async with te.open_shards("leases/default/x", shards=2, client="not a client"):  # type: ignore[arg-type]
                pass  # pragma: no cover
        else:
            manager = te.elect if face == "elect" else te.open_election
            async with manager("leases/default/x", client="not a client"):  # type: ignore[arg-type]
                pass  # pragma: no cover


# ------------------------------------------------------------------ 6. identities
@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ("me\nINFO forged line", r"^identity 'me\\nINFO forged line' holds the unprintable "
         r"character '\\n' \(U\+000A\)"),
        ("tab\there", r"unprintable character '\\t' \(U\+0009\)"),
        ("bidi\u202eevil", r"unprintable character '\\u202e' \(U\+202E\)"),
        ("x" * 65536, "^identity is 65536 characters long, more than 512: "),
    ],
)  # fmt: skip
async def test_an_identity_that_would_harm_logs_and_labels_is_refused(
    identity: str, message: str
) -> None:
    with pytest.raises(te.ConfigError, match=message):
        async with te.elect(te.MemoryLock(), identity=identity):
            pass  # pragma: no cover
    with pytest.raises(te.ConfigError, match=message):
        te.LeaderElector(
            te.ElectionConfig(
                lock=te.MemoryLock(), identity=identity, callbacks=te.LeaderCallbacks(_work)
            )
        )


async def test_identities_peers_commonly_use_are_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pod = "p" * 253
    for identity in (f"{pod}_7a53b8ee-b00b-4a82-acd2-3f9e4b1c2d5e", "my host", "nœud-é"):
        async with te.elect(te.MemoryLock(), identity=identity) as leadership:
            assert leadership.identity == identity


async def test_a_peer_record_with_any_holder_is_still_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    odd = "peer\nwith a newline" + "x" * 1000
    lock.put_record(te.LeaderRecord(holder_identity=odd, lease_duration_seconds=15))
    async with te.open_election(lock, identity="me") as election:
        assert election.leader == odd
