"""Run a local control plane until Ctrl-C or SIGTERM: `python -m trio_election.testing`.

Prints the admin kubeconfig and how to use it; `nox -s control_plane` runs this.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from trio_election._controlplane._binaries import BUILD_COMMAND, MissingBinaries
from trio_election._controlplane._control_plane import ControlPlane
from trio_election._controlplane._processes import StartupError

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trio_election.testing",
        description="Run etcd + kube-apiserver on loopback until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--bin-dir", type=Path, help="folder with kube-apiserver, etcd and kubectl")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="also write the admin kubeconfig here (removed again on exit)",
    )
    options = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _serve(options.bin_dir, options.kubeconfig, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(bin_dir: Path | None, copy_to: Path | None, stopping: threading.Event) -> int:
    print("starting etcd and kube-apiserver ...", flush=True)
    try:
        plane = ControlPlane.start(bin_dir)
    except MissingBinaries as error:
        print(f"error: {error}\n(build them with `{BUILD_COMMAND}`)", file=sys.stderr)
        return 1
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with plane:
        kubeconfig = plane.admin_kubeconfig
        if copy_to is not None:
            shutil.copyfile(kubeconfig, copy_to)
            copy_to.chmod(0o600)
            kubeconfig = copy_to
        kubectl = plane.bin_dir / "kubectl"
        print(
            f"control plane ready: {plane.server} (etcd {plane.etcd_url})\n"
            f"admin kubeconfig: {kubeconfig}\n"
            f"try:  KUBECONFIG={kubeconfig} {kubectl if kubectl.exists() else 'kubectl'}"
            " get leases -A\n"
            "Ctrl-C or SIGTERM stops it and removes its files.",
            flush=True,
        )
        try:
            while not stopping.wait(1.0):
                plane.check_running()
        except StartupError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            if copy_to is not None:
                copy_to.unlink(missing_ok=True)
            print("stopping ...", flush=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
