"""`Fence`: what a leader stamps on the objects it writes, so that a stale leader's writes
can be refused by whatever stores them.

A term's fence is the lock, the holder and the term (the lock record's transitions count
that our acquiring write set). On Kubernetes the objects carry it as a label naming the
election (`FENCE_LABEL`, which the ValidatingAdmissionPolicy of
``trio-election fence policy`` selects on) and two annotations, the holder
(`HOLDER_ANNOTATION`) and the term (`TERM_ANNOTATION`), which the policy compares with the
Lease's ``spec.holderIdentity`` and ``spec.leaseTransitions``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast, final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FENCE_LABEL", "HOLDER_ANNOTATION", "TERM_ANNOTATION", "Fence", "fence_label"]

FENCE_LABEL = "trio-election.io/fence"
"""The label that marks an object as fenced by an election; its value names the lock
(`fence_label`)."""
HOLDER_ANNOTATION = "trio-election.io/holder"
"""The identity of the leader that wrote the object."""
TERM_ANNOTATION = "trio-election.io/term"
"""The term (decimal) in which the leader wrote the object."""

_LABEL_MAX = 63
_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def fence_label(lock: str) -> str:
    """The value of `FENCE_LABEL` for the lock described as `lock` (``leases/ns/name`` gives
    ``leases.ns.name``): a valid label value; one longer than 63 characters is cut and ends
    with a hash of the whole description, so that it stays unique."""
    value = _NOT_IN_LABEL.sub(".", lock).strip("._-")
    if len(value) > _LABEL_MAX:
        digest = hashlib.sha256(lock.encode()).hexdigest()[:12]
        value = f"{value[: _LABEL_MAX - 13].rstrip('._-')}-{digest}"
    return value or hashlib.sha256(lock.encode()).hexdigest()[:12]


@final
@dataclass(frozen=True, slots=True)
class Fence:
    """One term's fencing token: `lock` (the lock's description, ``leases/ns/name``),
    `holder` (our identity) and `term` (the record's transitions count after our acquiring
    write; on a Lease, its ``spec.leaseTransitions``). Terms grow with every acquisition,
    ours or a successor's, so a store that keeps the highest term it has seen can refuse a
    write stamped with a lower one."""

    lock: str
    holder: str
    term: int

    @property
    def label(self) -> str:
        """The value of the election's label on fenced objects (`FENCE_LABEL`)."""
        return fence_label(self.lock)

    @property
    def labels(self) -> dict[str, str]:
        """The labels a leader puts on the objects it writes: the one naming the election,
        which the apiserver's policy selects fenced objects by."""
        return {FENCE_LABEL: self.label}

    @property
    def annotations(self) -> dict[str, str]:
        """The annotations a leader puts on the objects it writes: holder and term."""
        return {HOLDER_ANNOTATION: self.holder, TERM_ANNOTATION: str(self.term)}

    def stamp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `body` (a manifest, or a merge or strategic-merge patch body) with
        `labels` and `annotations` added to its ``metadata``, keeping everything else.

        ``fence.stamp({})`` is a patch that only stamps. Raises `TypeError` when ``metadata``
        (or its labels or annotations) is not a mapping.
        """
        stamped: dict[str, Any] = copy.deepcopy(dict(body))
        metadata: object = stamped.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise TypeError(f"cannot stamp a body whose metadata is {type(metadata).__name__}")
        fields = cast("dict[str, object]", metadata)
        for key, added in (("labels", self.labels), ("annotations", self.annotations)):
            present = fields.get(key)
            if present is None:
                present = fields[key] = {}
            if not isinstance(present, dict):
                raise TypeError(f"cannot stamp metadata.{key} of type {type(present).__name__}")
            cast("dict[str, object]", present).update(added)
        return stamped
