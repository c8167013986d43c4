"""Prometheus metrics: client-go's names and ours, in the text format and through
prometheus_client, from a real election's statistics (virtual time, MemoryLock)."""

from __future__ import annotations

import prometheus_client
import trio
import trio.testing

import trio_election as te
from trio_election._metrics import families, render_text
from trio_election.prometheus import ElectionCollector


async def lead_a_while(lock: te.MemoryLock) -> te.Statistics:
    handle = lock.handle()
    async with te.open_election(handle, identity="a") as election, election.leading():
        await trio.sleep(4.5)
        handle.conflict(1)
        await trio.sleep(2)
        return election.statistics()


async def test_text_format_has_client_gos_names_and_ours(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stats = await lead_a_while(te.MemoryLock("my-app"))
    text = render_text(families([stats]))
    lines = text.splitlines()
    assert 'leader_election_master_status{name="my-app"} 1' in lines
    assert 'leader_election_slowpath_total{name="my-app"} 1' in lines
    assert 'trio_election_renewals_total{name="my-app"} 3' in lines
    assert 'trio_election_conflicts_total{name="my-app"} 1' in lines
    assert 'trio_election_requests_total{name="my-app",verb="update",outcome="conflict"} 1' in lines
    assert "# TYPE leader_election_master_status gauge" in lines
    assert "# TYPE leader_election_slowpath_total counter" in lines
    assert text.endswith("\n")


async def test_a_follower_reports_zero_master_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock("my-app")
    lock.put_record(te.LeaderRecord("x", 15))
    async with te.open_election(lock, identity="b") as election:
        text = render_text(families([election.statistics()]))
    assert 'leader_election_master_status{name="my-app"} 0' in text.splitlines()


async def test_prometheus_client_collector(autojump_clock: trio.testing.MockClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    collector = ElectionCollector()
    registry.register(collector)
    lock = te.MemoryLock("my-app")
    async with te.open_election(lock, identity="a") as election, election.leading():
        collector.add(election)
        await trio.sleep(2.5)
        exposed = prometheus_client.generate_latest(registry).decode()
    lines = exposed.splitlines()
    assert 'leader_election_master_status{name="my-app"} 1.0' in lines
    assert 'leader_election_slowpath_total{name="my-app"} 0.0' in lines
    assert 'trio_election_renewals_total{name="my-app"} 1.0' in lines
