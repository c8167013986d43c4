"""Election metrics for `prometheus_client` (``pip install 'trio-election[prometheus]'``).

    from prometheus_client import REGISTRY
    from trio_election.prometheus import ElectionCollector

    collector = ElectionCollector()
    REGISTRY.register(collector)
    async with te.open_election("leases/default/my-app") as election:
        collector.add(election)
        ...

Names are client-go's (``leader_election_master_status{name}``,
``leader_election_slowpath_total{name}``), then ours, prefixed ``trio_election_``; the
values are read from `Election.statistics()` when Prometheus scrapes. `add()` also takes
the `Shards` of `open_shards()`: each shard's election (``name`` its Lease's) and the
group's ``trio_election_shards*`` families.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._metrics import families, shard_families
from ._shards._group import Shards

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._core._metering import Statistics
    from ._election import Election

__all__ = ["ElectionCollector"]


@final
class ElectionCollector(Collector):
    """A `prometheus_client` collector over the elections (and shard groups) added to it."""

    def __init__(self) -> None:
        self._elections: list[Election | Shards] = []

    def add(self, election: Election | Shards) -> None:
        """Report `election` (or every shard of a `Shards`) from now on (until `remove()`)."""
        self._elections.append(election)

    def remove(self, election: Election | Shards) -> None:
        self._elections.remove(election)

    def collect(self) -> Iterator[Metric]:
        stats: list[Statistics] = []
        groups: list[Shards] = []
        for each in self._elections:
            if isinstance(each, Shards):
                stats.extend(each.statistics())
                groups.append(each)
            else:
                stats.append(each.statistics())
        found = families(stats)
        if groups:
            found += shard_families(groups)
        for family in found:
            label_names = sorted({key for labels, _ in family.samples for key, _ in labels})
            if not label_names:
                label_names = ["name"]
            name = family.name.removesuffix("_total") if family.kind == "counter" else family.name
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.kind == "counter":
                metric = CounterMetricFamily(name, family.help, labels=label_names)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=label_names)
            for labels, value in family.samples:
                values = dict(labels)
                metric.add_metric([values.get(key, "") for key in label_names], value)
            yield metric
