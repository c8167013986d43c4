"""Prometheus metrics of elections: client-go's names, then ours (`trio_election_*`).

Built from `Election.statistics()` (and, for a shard group, `Shards`: each shard's election
under its Lease's name, and the group's own families, `shard_families()`), so they cost
nothing until scraped. `render_text()`
writes the Prometheus text format with the standard library alone (the command's
``/metrics`` uses it); `trio_election.prometheus.ElectionCollector` hands the same
families to `prometheus_client` (the ``prometheus`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._core._metering import Statistics
    from ._shards._group import Shards

__all__ = ["Family", "families", "render_text", "shard_families"]

Labels = tuple[tuple[str, str], ...]


@final
@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: a name, a type (``gauge`` or ``counter``), a help text, samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list[tuple[Labels, float]])


def _lock_name(stats: Statistics) -> str:
    """client-go's ``name`` label: the lock object's name."""
    return stats.lock.rsplit("/", 1)[-1]


def families(all_stats: Iterable[Statistics]) -> list[Family]:
    """The metric families for these elections' statistics."""
    master = Family(
        "leader_election_master_status",
        "gauge",
        "1 while this process leads the election of the lock `name`, else 0 (client-go).",
    )
    slowpath = Family(
        "leader_election_slowpath_total",
        "counter",
        "Renewals that had to read the lock first because the cached version was stale or "
        "the direct write failed (client-go).",
    )
    renewals = Family("trio_election_renewals_total", "counter", "Successful renewals.")
    failed = Family("trio_election_failed_renewals_total", "counter", "Failed renew attempts.")
    terms = Family("trio_election_terms_total", "counter", "Terms led.")
    leading = Family("trio_election_leading_seconds_total", "counter", "Time spent leading.")
    conflicts = Family(
        "trio_election_conflicts_total", "counter", "Writes refused because another wrote first."
    )
    requests = Family(
        "trio_election_requests_total", "counter", "Lock requests by verb and outcome."
    )
    losses = Family("trio_election_losses_total", "counter", "Terms lost, by kind.")
    latency = Family(
        "trio_election_renew_latency_seconds", "gauge", "The last successful renew's latency."
    )
    latency_max = Family(
        "trio_election_renew_latency_max_seconds", "gauge", "The slowest successful renew."
    )
    watching = Family(
        "trio_election_watching", "gauge", "1 while the lock is followed with a watch."
    )
    for stats in all_stats:
        name = _lock_name(stats)
        base: Labels = (("name", name),)
        master.samples.append((base, 1.0 if stats.is_leader else 0.0))
        slowpath.samples.append((base, stats.slow_path_renewals))
        renewals.samples.append((base, stats.renewals))
        failed.samples.append((base, stats.failed_renewals))
        terms.samples.append((base, stats.terms))
        leading.samples.append((base, stats.time_leading))
        conflicts.samples.append((base, stats.conflicts))
        watching.samples.append((base, 1.0 if stats.watching else 0.0))
        for (verb, outcome), count in sorted(stats.requests.items()):
            requests.samples.append(((*base, ("verb", verb), ("outcome", outcome)), count))
        for kind, count in sorted(stats.losses.items()):
            losses.samples.append(((*base, ("kind", kind)), count))
        if stats.renew_latency_last is not None:
            latency.samples.append((base, stats.renew_latency_last))
        if stats.renew_latency_max is not None:
            latency_max.samples.append((base, stats.renew_latency_max))
    return [
        master,
        slowpath,
        renewals,
        failed,
        terms,
        leading,
        conflicts,
        requests,
        losses,
        latency,
        latency_max,
        watching,
    ]


def shard_families(all_shards: Iterable[Shards]) -> list[Family]:
    """The families of these shard groups as a whole, label ``name`` the group's name
    (each shard's own election is in `families()`, under its Lease's name)."""
    count = Family("trio_election_shards", "gauge", "The shard count S of the group.")
    owned = Family(
        "trio_election_shards_owned", "gauge", "Shards this member leads now (its work runs)."
    )
    members = Family(
        "trio_election_shard_members",
        "gauge",
        "Live members of the group this member sees, itself included while it serves.",
    )
    moves = Family(
        "trio_election_shard_moves_total",
        "counter",
        "Shards that came to this member (direction acquired) and went (direction lost: "
        "moved, lease lost, or left).",
    )
    for shards in all_shards:
        base: Labels = (("name", shards.group.rsplit("/", 1)[-1]),)
        count.samples.append((base, float(shards.shards)))
        owned.samples.append((base, float(len(shards.owned))))
        members.samples.append((base, float(len(shards.members))))
        for direction, total in sorted(shards.moves.items()):
            moves.samples.append(((*base, ("direction", direction)), float(total)))
    return [count, owned, members, moves]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_text(all_families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (version 0.0.4) of `all_families`."""
    lines: list[str] = []
    for family in all_families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
            lines.append(f"{family.name}{{{text}}} {_number(value)}")
    return "\n".join(lines) + "\n"
