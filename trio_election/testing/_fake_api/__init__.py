"""`FakeKubeApi`: an in-memory Kubernetes API for tests in virtual time.

It serves Leases, Endpoints and ConfigMaps the way the real apiserver does where a lock can
tell: one `resourceVersion` counter for everything (etcd's revision), writes with a stale
version refused with 409, a write that changes nothing keeps the version and sends no watch
event, ``Status`` error bodies shaped like the apiserver's, RBAC per verb, and watches as
streams of JSON lines. It runs inside the test's run (trio or asyncio), behind an
`httpx.MockTransport`: no sockets, so `autojump_clock` works, and hangs and timeouts cost
no real time.

    api = FakeKubeApi()
    async with api.client() as client:                       # a KubeClient over the fake
        lock = LeaseLock("default", "my-app", client)
        ...
    assert api.count("patch", "leases") == 1                 # exact request counts

Faults: `fail_next()` answers the next requests with an error status (or a connection
error), `hang_next()` holds them until `heal()`, `stall_next()` applies a write late while
its sender hears nothing, `latency` delays every request; per user, `slow_down()`,
`lag_watches()` and `partition()` hold until `heal(user)`. `end_watches()`,
`break_watches()` and `expire_watches()` end open watch streams (of everyone or of one user)
normally, with a broken connection, or with a 410 Gone event. `compact()` forgets history so
that watching from an old version gets 410, as after etcd compaction. `revoke()` stops
accepting a token (401).

The package is split by concern: `_objects` (kinds, Status bodies, validation), `_requests`
(the request log and faults), `_watch` (the change history and watch streams), `_api` (the
API itself).
"""

from __future__ import annotations

from ._api import FakeKubeApi as FakeKubeApi
from ._objects import ALL_VERBS as ALL_VERBS
from ._objects import DEPRECATED_ENDPOINTS as DEPRECATED_ENDPOINTS
from ._objects import ELECTION_VERBS as ELECTION_VERBS
from ._requests import FakeRequest as FakeRequest

__all__ = [
    "ALL_VERBS",
    "DEPRECATED_ENDPOINTS",
    "ELECTION_VERBS",
    "FakeKubeApi",
    "FakeRequest",
]
