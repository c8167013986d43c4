"""Testing tools: a real Kubernetes control plane on loopback, and a leadership history checker.

`ControlPlane` needs the binaries built by `scripts/build_control_plane.py` (or
`$KUBEBUILDER_ASSETS`) and the `test` dependency group (`trustme`); see docs/control-plane.md.
"""

from __future__ import annotations

from ._binaries import Binaries as Binaries
from ._binaries import MissingBinaries as MissingBinaries
from ._binaries import find_binaries as find_binaries
from ._binaries import missing_message as missing_message
from ._control_plane import ControlPlane as ControlPlane
from ._control_plane import TestUser as TestUser
from ._fake_api import FakeKubeApi as FakeKubeApi
from ._history import History as History
from ._history import Interval as Interval
from ._processes import PortInUseError as PortInUseError
from ._processes import StartupError as StartupError

__all__ = [
    "Binaries",
    "ControlPlane",
    "FakeKubeApi",
    "History",
    "Interval",
    "MissingBinaries",
    "PortInUseError",
    "StartupError",
    "TestUser",
    "find_binaries",
    "missing_message",
]
