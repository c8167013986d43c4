"""`trio-election control-plane build|path|start`: a local kube-apiserver + etcd.

- ``build``: build kube-apiserver, kubectl and etcd from Go modules into the cache folder
  (about six minutes on two cores, once; needs Go >= 1.26 and the Go module proxy), or
  reuse them when they are there;
- ``path``: print the folder holding them (usable as ``$KUBEBUILDER_ASSETS``); exit 1 when
  they are missing;
- ``start``: run etcd and kube-apiserver on loopback until Ctrl-C or SIGTERM and print the
  admin kubeconfig's path.

The folder is ``$KUBEBUILDER_ASSETS`` when set (controller-runtime's envtest convention),
else ``$TRIO_ELECTION_K8S_BIN``, else ``~/.cache/trio-election/k8s/<version>/``. Starting a
control plane also needs ``trustme`` (it makes the certificates).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._options import CommandError, Subcommands

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["add_parser", "main"]


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "control-plane",
        help="build, locate or start a local kube-apiserver + etcd",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="build kube-apiserver, kubectl and etcd from Go modules (or reuse them)",
        description="Build kube-apiserver, kubectl and etcd from Go modules into the cache "
        "folder, or reuse them when they are there.",
    )
    build.add_argument(
        "--if-needed",
        action="store_true",
        help="quiet when present; without Go, say how to get them and exit 0 (1 under CI=true)",
    )
    actions.add_parser(
        "path",
        help="print the folder holding the binaries",
        description="Print the folder holding kube-apiserver, etcd and kubectl (or where "
        "`build` puts them); exit 1 when they are missing.",
    )
    start = actions.add_parser(
        "start",
        help="run a control plane until Ctrl-C; print the admin kubeconfig",
        description="Run etcd and kube-apiserver on loopback until Ctrl-C or SIGTERM, and "
        "print the admin kubeconfig's path. Everything is removed on exit.",
    )
    start.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="also write the admin kubeconfig here (removed again on exit)",
    )
    parser.set_defaults(handler=main)


def main(options: argparse.Namespace) -> int:
    if options.command is not None:
        raise CommandError("control-plane takes no command after --", 2)
    from .._controlplane import _binaries, _build

    if options.action == "build":
        return _build.ensure_control_plane(options.if_needed)
    if options.action == "path":
        found = _binaries.find_binaries()
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        folder = Path(assets).expanduser().absolute() if assets else _binaries.cache_dir()
        print(found.bin_dir if found is not None else folder)
        if found is None:
            print(
                f"trio-election: the binaries are missing: {_binaries.missing_message()}",
                file=sys.stderr,
            )
            return 1
        return 0
    return _start(options.kubeconfig)


def _start(copy_to: Path | None) -> int:
    from .._controlplane._binaries import MissingBinaries
    from .._controlplane._control_plane import ControlPlane
    from .._controlplane._processes import StartupError

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("starting etcd and kube-apiserver ...", file=sys.stderr, flush=True)
        try:
            plane = ControlPlane.start()
        except MissingBinaries as exc:
            raise CommandError(str(exc)) from None
        except ModuleNotFoundError as exc:
            raise CommandError(
                f"starting a control plane needs the {exc.name!r} package: "
                f"pip install 'trio-election[control-plane]'"
            ) from None
        except StartupError as exc:
            raise CommandError(str(exc)) from None
        with plane:
            kubeconfig = plane.admin_kubeconfig
            if copy_to is not None:
                shutil.copyfile(kubeconfig, copy_to)
                copy_to.chmod(0o600)
                kubeconfig = copy_to
            print(
                f"control plane ready: {plane.server} (etcd {plane.etcd_url})\n"
                f"admin kubeconfig: {kubeconfig}\n"
                f"try:  KUBECONFIG={kubeconfig} trio-election status leases/default/demo\n"
                "Ctrl-C or SIGTERM stops it and removes its files.",
                file=sys.stderr,
                flush=True,
            )
            print(kubeconfig, flush=True)
            try:
                while not stopping.wait(1.0):
                    plane.check_running()
            except StartupError as exc:
                raise CommandError(str(exc)) from None
            finally:
                if copy_to is not None:
                    copy_to.unlink(missing_ok=True)
                print("stopping ...", file=sys.stderr, flush=True)
        print("stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
