"""Candidates over one `FakeKubeApi`, each with its own client, recorded in one `History`."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

import trio_election as te
from trio_election.kube import LEADER_ANNOTATION, KubeClient
from trio_election.testing import FakeKubeApi, History, LoopClock

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _virtual_wall() -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=trio.current_time())


VIRTUAL_WALL = LoopClock(wall=_virtual_wall)
"""trio's clock, with a wall clock that moves with virtual time: annotation records hold
whole seconds, and renewals a real second apart must write different times."""
NAME = "my-app"
LOCKS: dict[str, type[te.LeaseLock | te.ConfigMapLock | te.EndpointsLock]] = {
    "leases": te.LeaseLock,
    "configmaps": te.ConfigMapLock,
    "endpoints": te.EndpointsLock,
}


@dataclass
class Candidate:
    """One candidate process: its identity, its API user, its terms, its fate."""

    identity: str
    user: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    election: te.Election | None = None
    terms: list[te.Leadership] = field(default_factory=list[te.Leadership])
    error: BaseException | None = None
    token: str = ""


@dataclass
class Fleet:
    """Candidates on one lock of `api`."""

    api: FakeKubeApi
    resource: str = "leases"
    history: History = field(default_factory=History)
    candidates: list[Candidate] = field(default_factory=list[Candidate])

    def start(
        self,
        nursery: trio.Nursery,
        identity: str,
        *,
        user: str | None = None,
        work: float = math.inf,
        verbs: Mapping[str, Collection[str]] | None = None,
        process: str | None = None,
        client: KubeClient | None = None,
    ) -> Candidate:
        """Start a candidate that leads again and again, each term working `work` seconds.

        An error that comes out of the election is kept in `candidate.error` (the others go
        on). `process` names its terms in the history (default: the identity). `client`
        replaces the candidate's own client over `api` (closed by the candidate)."""
        candidate = Candidate(identity, user or identity)
        self.candidates.append(candidate)
        given = client or self.api.client(user=candidate.user, verbs=verbs)
        nursery.start_soon(self._run, candidate, work, given, process or identity)
        return candidate

    async def _run(
        self,
        candidate: Candidate,
        work: float,
        given: KubeClient,
        process: str,
    ) -> None:
        with candidate.scope:
            try:
                async with given as client:
                    candidate.token = client.config.token or ""
                    lock = LOCKS[self.resource]("default", NAME, client)
                    async with te.open_election(
                        lock,
                        identity=candidate.identity,
                        lease_duration=LEASE,
                        renew_deadline=RENEW,
                        retry_period=RETRY,
                        stop_on_sigterm=False,
                        clock=VIRTUAL_WALL,
                    ) as election:
                        candidate.election = election
                        while True:
                            async with election.leading() as leadership:
                                candidate.terms.append(leadership)
                                with self.history.leading(process):
                                    await trio.sleep(work)
            except te.ElectionError as exc:
                candidate.error = exc

    def record(self) -> te.LeaderRecord | None:
        """The record in the lock now, as our locks read it (None: unreadable)."""
        obj = self.api.get_object(self.resource, NAME)
        if obj is None:
            return None
        return read_record(self.resource, obj)

    def holder(self) -> str | None:
        record = self.record()
        return None if record is None else record.holder_identity or None


def read_record(resource: str, obj: dict[str, Any]) -> te.LeaderRecord | None:
    lock = LOCKS[resource]("default", NAME)
    record, _raw = lock._read(obj)
    return record


def put_lease_spec(api: FakeKubeApi, spec: object) -> None:
    """Store a Lease whose spec is `spec` (anything: the apiserver would refuse some)."""
    obj: dict[str, Any] = {"metadata": {"name": NAME, "namespace": "default"}}
    if spec is not _NO_SPEC:
        obj["spec"] = spec
    api.put_object("leases", obj)


def put_annotation(api: FakeKubeApi, value: str, resource: str = "configmaps") -> None:
    """Store a ConfigMap (or Endpoints) whose leader annotation is `value`."""
    api.put_object(
        resource,
        {
            "metadata": {
                "name": NAME,
                "namespace": "default",
                "annotations": {LEADER_ANNOTATION: value},
            }
        },
    )


_NO_SPEC: Any = object()
NO_SPEC: Any = _NO_SPEC
"""For `put_lease_spec`: a Lease without a spec at all."""
