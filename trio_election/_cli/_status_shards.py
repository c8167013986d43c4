"""`trio-election status LOCK --shards`: the shard map of a group and its members.

One list of the namespace's Leases: the shard Leases ``<name>-shard-<i>`` (holder, term,
renewed, fresh or expired) and the membership Leases labelled
``trio-election.io/shard-group: <name>`` (identity, shard count, renewed, fresh or
expired). Fresh means renewed less than its lease duration ago by this machine's wall
clock: for people to read (members judge each other by how long they have seen a record
unchanged, never by the times written in it).
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import trio

import trio_election.kube
from trio_election._kube._json import as_list, as_mapping
from trio_election._kube_locks._records import record_from_lease_spec
from trio_election._kube_locks._spec import check_lock_string
from trio_election._shards._kube import GROUP_LABEL, member_entry

from ._options import CommandError

if TYPE_CHECKING:
    from trio_election.kube import KubeClient

__all__ = ["describe_group", "read_group", "text"]

READ_TIMEOUT = 30.0
"""Seconds the list of Leases may take before the command gives up."""


def _stamp(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _age(moment: datetime.datetime | None, now: datetime.datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def _state(holder: str | None, age: float | None, duration: int) -> str:
    if not holder:
        return "free"
    if age is None or duration <= 0 or age >= duration:
        return "expired"
    return "fresh"


async def read_group(spec: str, client: KubeClient) -> tuple[str, str, list[dict[str, Any]]]:
    """The namespace, the group's name and every Lease of that namespace (one list).

    Raises `CommandError` for a refusal (naming what the apiserver said), an unreachable
    apiserver or no answer within `READ_TIMEOUT`."""
    _, namespace, name = check_lock_string(spec)
    ns = client.namespace if namespace is None else namespace
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    with trio.move_on_after(READ_TIMEOUT):
        try:
            listing = await client.request("GET", path)
        except (trio_election.kube.ForbiddenError, trio_election.kube.UnauthorizedError) as exc:
            raise CommandError(f"cannot list the Leases of namespace {ns}: {exc}") from None
        except (trio_election.kube.ApiError, trio_election.kube.ApiConnectionError) as exc:
            raise CommandError(f"cannot list the Leases of namespace {ns}: {exc}") from None
        items = [item for item in as_list(listing.get("items")) or [] if as_mapping(item)]
        return ns, name, items
    server = client.config.server
    raise CommandError(
        f"cannot list the Leases of namespace {ns}: no answer from {server} within "
        f"{READ_TIMEOUT:g} s"
    )


def describe_group(
    namespace: str, name: str, items: list[dict[str, Any]], now: datetime.datetime
) -> dict[str, Any]:
    """What `status --shards` shows, as JSON-ready values."""
    shard_name = re.compile(rf"{re.escape(name)}-shard-(0|[1-9][0-9]*)")
    shard_leases: dict[int, dict[str, Any]] = {}
    members: list[dict[str, Any]] = []
    for item in items:
        meta = as_mapping(item.get("metadata")) or {}
        labels = as_mapping(meta.get("labels")) or {}
        object_name = meta.get("name")
        if not isinstance(object_name, str):
            continue
        if labels.get(GROUP_LABEL) == name:
            entry = member_entry(item)
            record = None if entry is None else entry.record
            if record is None:
                members.append({"lease": object_name, "identity": None, "state": "unreadable"})
                continue
            age = _age(record.renew_time, now)
            members.append(
                {
                    "lease": object_name,
                    "identity": record.identity,
                    "shards": record.shards,
                    "state": _state(record.identity, age, record.lease_duration_seconds),
                    "renew_time": _stamp(record.renew_time),
                    "renew_age_seconds": age,
                    "lease_duration_seconds": record.lease_duration_seconds,
                }
            )
            continue
        found = shard_name.fullmatch(object_name)
        if found:
            shard_leases[int(found.group(1))] = item
    counts = Counter(m["shards"] for m in members if m["state"] == "fresh")
    counts = counts or Counter(m["shards"] for m in members if "shards" in m)
    # the members' count (most of the fresh ones), else as many as there are shard Leases
    count = counts.most_common(1)[0][0] if counts else max(shard_leases, default=-1) + 1
    shards: list[dict[str, Any]] = []
    for shard in range(count):
        stored = shard_leases.get(shard)
        row: dict[str, Any] = {"shard": shard, "lease": f"{name}-shard-{shard}"}
        if stored is None:
            row.update(exists=False, holder=None, state="free", term=None)
            row.update(renew_time=None, renew_age_seconds=None, lease_duration_seconds=None)
            shards.append(row)
            continue
        lease = record_from_lease_spec(stored.get("spec"))
        if lease is None:
            row.update(exists=True, holder=None, state="unreadable", term=None)
            row.update(renew_time=None, renew_age_seconds=None, lease_duration_seconds=None)
            shards.append(row)
            continue
        holder = lease.holder_identity or None
        age = _age(lease.renew_time, now)
        row.update(
            exists=True,
            holder=holder,
            state=_state(holder, age, lease.lease_duration_seconds),
            term=lease.leader_transitions,
            renew_time=_stamp(lease.renew_time),
            renew_age_seconds=age,
            lease_duration_seconds=lease.lease_duration_seconds or None,
        )
        shards.append(row)
    for member in members:
        if member["identity"] is not None:
            member["leads"] = [
                s["shard"]
                for s in shards
                if s["holder"] == member["identity"] and s["state"] == "fresh"
            ]
    members.sort(key=lambda m: (m["identity"] is None, m["identity"] or m["lease"]))
    return {
        "group": f"leases/{namespace}/{name}",
        "shard_count": count,
        "live_members": sum(1 for m in members if m["state"] == "fresh"),
        "shards": shards,
        "members": members,
    }


def text(info: dict[str, Any]) -> str:
    """The shard map and the members as a table for people."""
    lines = [
        f"group:    {info['group']}",
        f"shards:   {info['shard_count']}",
        f"members:  {info['live_members']} live",
    ]
    if not info["shards"] and not info["members"]:
        lines.append("(no shard Lease and no member: nobody has joined this group)")
        return "\n".join(lines)

    def ago(age: float | None) -> str:
        return "-" if age is None else f"{age:.1f} s ago"

    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]

    shard_rows = [["SHARD", "HOLDER", "STATE", "TERM", "RENEWED"]]
    for s in info["shards"]:
        term = "-" if s["term"] is None else str(s["term"])
        shard_rows.append(
            [str(s["shard"]), s["holder"] or "-", s["state"], term, ago(s["renew_age_seconds"])]
        )
    lines += ["", *table(shard_rows)]
    member_rows = [["MEMBER", "STATE", "SHARDS", "LEADS", "RENEWED"]]
    for m in info["members"]:
        if m["identity"] is None:
            member_rows.append([f"({m['lease']})", m["state"], "-", "-", "-"])
            continue
        leads = ",".join(str(i) for i in m["leads"]) or "-"
        member_rows.append(
            [m["identity"], m["state"], str(m["shards"]), leads, ago(m["renew_age_seconds"])]
        )
    if len(member_rows) == 1:
        lines += ["", "(no member: nobody serves this group now)"]
    else:
        lines += ["", *table(member_rows)]
    return "\n".join(lines)
