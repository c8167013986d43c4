"""The writes of one graceful handover, from the apiserver's counts and the candidates' own.

The apiserver counts every PATCH on Leases (`apiserver_request_total`, by status code; its
own writes of Leases are PUTs, ours merge PATCHes). Less what the candidates count as not
taking the lock (the leaders' renewals, the release, the nominations), what remains are
the writes that took the lock, or tried to. Shared by tests/control_plane/
test_handover_writes.py (candidates in one process) and the benchmarks' storm phase
(candidates in several).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Calls", "HandoverWrites", "handover_writes", "lease_patches"]

Calls = Counter[tuple[str, str]]
"""A candidate's lock calls by (verb, outcome), as `Election.statistics().requests`."""

_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def lease_patches(metrics: str) -> Counter[str]:
    """PATCH requests on Leases the apiserver has answered so far, by status code, from the
    text of its /metrics."""
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        match = _REQUESTS.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("resource") == "leases" and labels.get("verb") == "PATCH":
            counts[labels.get("code", "")] += round(float(match["value"]))
    return counts


def updates(calls: Calls, outcome: str | None = None) -> int:
    return sum(n for (verb, out), n in calls.items() if verb == "update" and outcome in (None, out))


def nominations(calls: Calls, outcome: str | None = None) -> int:
    return sum(
        n for (verb, out), n in calls.items() if verb == "nominate" and outcome in (None, out)
    )


@dataclass(frozen=True, slots=True)
class HandoverWrites:
    writes: int
    """Writes that took the lock, or tried to (refused ones included)."""
    refused: int
    """Of those, refused by their precondition (409)."""


def handover_writes(
    before: Counter[str],
    after: Counter[str],
    *,
    old_renews: Calls,
    new_renews: Calls,
    named: Calls,
) -> HandoverWrites:
    """The handover's writes between two `lease_patches()` counts: less the old leader's
    renewals (its calls from `before` to its term's end, the release not included) and its
    release, the new leader's renewals (its calls since its term began, the write that took
    the lock not included), and every candidate's nominations in between (`named`)."""
    patches = sum(after.values()) - sum(before.values())
    writes = patches - updates(old_renews) - 1 - updates(new_renews) - nominations(named)
    refused = (
        after["409"]
        - before["409"]
        - updates(old_renews, "conflict")
        - updates(new_renews, "conflict")
        - nominations(named, "conflict")
    )
    return HandoverWrites(writes=writes, refused=refused)
