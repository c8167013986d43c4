"""Tools for testing code that uses trio-election.

- `FakeKubeApi`: an in-memory Kubernetes API (Leases, Endpoints, ConfigMaps, watches, RBAC
  per verb, injected faults) behind an `httpx.MockTransport`, for `KubeClient` and the
  Kubernetes locks in virtual time, without a cluster; see docs/locks.md.
- `ControlPlane`: a real etcd + kube-apiserver on loopback, with `TestUser`s holding exactly
  the rights a test gives them, and faults (restarts, etcd outages, a frozen apiserver).
  `ControlPlane.start()` raises `MissingBinaries` without the binaries (built by
  `trio-election control-plane build`, or `$KUBEBUILDER_ASSETS`) and `StartupError` (or
  `PortInUseError` on a restart) when a process does not come up; it needs the
  `control-plane` extra (`trustme`). `find_binaries()` returns the `Binaries` found, or None,
  and `missing_message()` says how to get them (a fixture's skip reason); see
  docs/control-plane.md. `python -m trio_election.testing` runs one until Ctrl-C.
- `History` and `Interval`: record the candidates' terms of leadership and check that no two
  ever overlapped (`History.assert_one_leader()`).
- `MemoryLockHandle`: one candidate's access to a `MemoryLock` (`MemoryLock.handle()`),
  with its fault controls: `delay`, `fail()`, `conflict()`, `hang()` until `heal()`;
  `calls` counts its calls.
- `ScaledClock`: a clock that runs `rate` times as fast as the event loop's, for candidates
  whose clocks drift apart; `LoopClock`: the event loop's clock (the default; trio's under
  trio, so virtual time works) with the wall-clock time of
  the records it writes given by a function (`LoopClock(wall=...)`), for exact records in
  virtual time.
"""

from __future__ import annotations

from trio_election._controlplane._binaries import Binaries as Binaries
from trio_election._controlplane._binaries import MissingBinaries as MissingBinaries
from trio_election._controlplane._binaries import find_binaries as find_binaries
from trio_election._controlplane._binaries import missing_message as missing_message
from trio_election._controlplane._control_plane import ControlPlane as ControlPlane
from trio_election._controlplane._control_plane import TestUser as TestUser
from trio_election._controlplane._processes import PortInUseError as PortInUseError
from trio_election._controlplane._processes import StartupError as StartupError
from trio_election._core._clock import LoopClock as LoopClock
from trio_election._core._clock import ScaledClock as ScaledClock
from trio_election._core._memory import MemoryLockHandle as MemoryLockHandle
from trio_election._history import History as History
from trio_election._history import Interval as Interval
from trio_election._public import name_home

from ._fake_api import FakeKubeApi as FakeKubeApi

__all__ = [
    "Binaries",
    "ControlPlane",
    "FakeKubeApi",
    "History",
    "Interval",
    "LoopClock",
    "MemoryLockHandle",
    "MissingBinaries",
    "PortInUseError",
    "ScaledClock",
    "StartupError",
    "TestUser",
    "find_binaries",
    "missing_message",
]


name_home(__name__, [globals()[name] for name in __all__])
