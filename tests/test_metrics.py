"""Prometheus metrics: client-go's names and ours, in the text format and through
prometheus_client, from a real election's statistics (virtual time, MemoryLock), and a
shard group's (MemoryLockGroup)."""

from __future__ import annotations

import prometheus_client
import trio
import trio.testing

import trio_election as te
from trio_election._metrics import families, render_text, shard_families
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


async def serve_shards(
    group: te.MemoryLockGroup, name: str, *, task_status: trio.TaskStatus[te.Shards]
) -> None:
    async def work(shard: int, leadership: te.Leadership) -> None:
        await trio.sleep_forever()

    async with (
        te.open_shards(group, shards=4, identity=name, stop_on_sigterm=False) as shards,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(shards.serve, work)
        task_status.started(shards)


async def test_shard_metrics_count_owned_shards_moves_and_members(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = te.MemoryLockGroup("work")
    registry = prometheus_client.CollectorRegistry()
    collector = ElectionCollector()
    registry.register(collector)
    async with trio.open_nursery() as nursery:
        a: te.Shards = await nursery.start(serve_shards, group, "a")
        collector.add(a)
        await trio.sleep(1)
        assert a.owned == {0, 1, 2, 3}
        await nursery.start(serve_shards, group, "b")
        await trio.sleep(1)  # b joins: two shards move to it
        lines = render_text(shard_families([a])).splitlines()
        assert 'trio_election_shards{name="work"} 4' in lines
        assert 'trio_election_shards_owned{name="work"} 2' in lines
        assert 'trio_election_shard_members{name="work"} 2' in lines
        assert 'trio_election_shard_moves_total{name="work",direction="acquired"} 4' in lines
        assert 'trio_election_shard_moves_total{name="work",direction="lost"} 2' in lines
        assert "# TYPE trio_election_shard_moves_total counter" in lines
        # through prometheus_client: the group's families and each shard's election
        exposed = prometheus_client.generate_latest(registry).decode().splitlines()
        assert 'trio_election_shards_owned{name="work"} 2.0' in exposed
        assert 'trio_election_shard_moves_total{direction="lost",name="work"} 2.0' in exposed
        masters = sorted(line for line in exposed if line.startswith("leader_election_master"))
        assert masters == [
            f'leader_election_master_status{{name="work-shard-{i}"}} {float(i in a.owned)}'
            for i in range(4)
        ]
        nursery.cancel_scope.cancel()
