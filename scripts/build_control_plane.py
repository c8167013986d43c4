#!/usr/bin/env python3
"""Build kube-apiserver, kubectl and etcd from Go modules for the real control-plane tests.

    python scripts/build_control_plane.py              # build, or reuse what is there
    python scripts/build_control_plane.py --if-needed  # never fail just because Go is missing
    python scripts/build_control_plane.py --print-dir  # the folder the binaries are in

The control-plane build itself lives in the package (`trio_election/_controlplane/_build.py`,
also run by `trio-election control-plane build`); this script runs it without importing the
package (standard library only, so CI can call it before any virtualenv exists), and adds
what only a checkout has: the client-go candidate of the interop tests (tests/peers/clientgo,
a small module of its own with a committed go.sum), built into the same folder and rebuilt
whenever its sources change (the reuse check is a hash of main.go, go.mod and go.sum);
the old client-go candidates of the interop tests on removed locks (tests/peers/clientgo_old:
one source built against client-go v0.23 with go.v023.mod and v0.27 with go.mod, rebuilt the
same way); and Toxiproxy's server for the network-fault tests (tests/chaos), built once per
pinned release.

Where the binaries go and how they are found again: `trio_election/_controlplane/_binaries.py`
(`$KUBEBUILDER_ASSETS`, `$TRIO_ELECTION_K8S_BIN`, `~/.cache/trio-election/k8s/<version>/`).
Standard library only; Python 3.11.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from trio_election._controlplane import _binaries as binaries
    from trio_election._controlplane import _build as _package_build
else:
    # trio_election/_controlplane's modules as a bare package of their own, so that neither
    # the package nor its dependencies need be importable here
    _package = types.ModuleType("_trio_election_controlplane")
    _package.__path__ = [str(REPO / "trio_election" / "_controlplane")]
    sys.modules[_package.__name__] = _package
    binaries = importlib.import_module("_trio_election_controlplane._binaries")
    _package_build = importlib.import_module("_trio_election_controlplane._build")

# the build's steps, under the names this script has always had
K8S = _package_build.K8S
COMMANDS = _package_build.COMMANDS
BuildError = _package_build.BuildError
progress = _package_build.progress
go_env = _package_build.go_env
run_go = _package_build.run_go
check_go = _package_build.check_go
go_version = _package_build.go_version
download_release_gomod = _package_build.download_release_gomod
parse_gomod = _package_build.parse_gomod
write_build_module = _package_build.write_build_module
ldflags = _package_build.ldflags
build = _package_build.build
etcd_version = _package_build.etcd_version

CLIENTGO_SOURCE = REPO / "tests" / "peers" / "clientgo"
OLD_CLIENTGO_SOURCE = REPO / "tests" / "peers" / "clientgo_old"


def build_clientgo(bin_dir: Path) -> None:
    """Build the client-go candidate from tests/peers/clientgo.

    `-mod=readonly`: the build uses the committed go.mod and go.sum as they are (a missing
    checksum is an error to fix there with `go mod tidy`, never rewritten by a build)."""
    check_go()
    name = binaries.CLIENTGO_CANDIDATE
    progress(f"go build tests/peers/clientgo -> {name}")
    digest = binaries.clientgo_digest(CLIENTGO_SOURCE)
    bin_dir.mkdir(parents=True, exist_ok=True)
    partial = bin_dir / f".{name}.partial"
    args = ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    run_go(args, CLIENTGO_SOURCE, mod="readonly")
    partial.replace(bin_dir / name)
    (bin_dir / f"{name}.sha256").write_text(digest + "\n")
    progress(f"built {bin_dir / name}")


def build_old_clientgo(bin_dir: Path, release: str) -> None:
    """Build the old client-go candidate for `release` ("v0.23" or "v0.27") from
    tests/peers/clientgo_old with the go.mod file that pins it (`-modfile`), `-mod=readonly`
    as `build_clientgo`."""
    check_go()
    name = binaries.old_clientgo_name(release)
    modfile = binaries.OLD_CLIENTGO_RELEASES[release]
    progress(f"go build -modfile={modfile} tests/peers/clientgo_old -> {name}")
    digest = binaries.sources_digest(OLD_CLIENTGO_SOURCE, binaries.old_clientgo_sources(release))
    bin_dir.mkdir(parents=True, exist_ok=True)
    partial = bin_dir / f".{name}.partial"
    args = ["build", f"-modfile={modfile}", "-trimpath", "-ldflags", "-s -w"]
    run_go([*args, "-o", str(partial), "."], OLD_CLIENTGO_SOURCE, mod="readonly")
    partial.replace(bin_dir / name)
    (bin_dir / f"{name}.sha256").write_text(digest + "\n")
    progress(f"built {bin_dir / name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build kube-apiserver, kubectl and etcd for the real control-plane "
        "tests, and the client-go candidate of the interop tests."
    )
    parser.add_argument(
        "--if-needed",
        action="store_true",
        help="build only when the binaries are missing and Go is there; without Go, "
        "print how to get them and exit 0 (non-zero under CI=true)",
    )
    parser.add_argument("--print-dir", action="store_true", help="print the bin folder")
    options = parser.parse_args(argv)

    if options.print_dir:
        found = binaries.find_binaries()
        print(found.bin_dir if found else binaries.cache_dir())
        return 0
    status = control_plane(options.if_needed)
    if status == 0:
        status = clientgo_candidate(options.if_needed)
    if status == 0:
        status = old_clientgo_candidates(options.if_needed)
    if status == 0:
        status = toxiproxy(options.if_needed)
    return status


def control_plane(if_needed: bool) -> int:
    """kube-apiserver, kubectl and etcd: reuse or build (see `ensure_control_plane`)."""
    return _package_build.ensure_control_plane(if_needed)


def clientgo_candidate(if_needed: bool) -> int:
    """Build the interop tests' client-go peer into the cache folder (even when the control
    plane binaries come from $KUBEBUILDER_ASSETS)."""
    found = binaries.find_clientgo_candidate(CLIENTGO_SOURCE)
    if found is not None:
        if not if_needed:
            progress(f"reusing {found} (built from the current tests/peers/clientgo)")
        return 0
    if not (CLIENTGO_SOURCE / "main.go").is_file():
        progress(f"no {CLIENTGO_SOURCE}: the client-go interop tests will be skipped")
        return 0
    if shutil.which("go") is None:
        message = (
            "Go is not installed to build the client-go candidate of the interop tests "
            f"(tests/peers/clientgo -> {binaries.cache_dir()})"
        )
        return _package_build.without_go(message, "client-go interop tests")
    return _package_build.run_build(lambda: build_clientgo(binaries.cache_dir()))


def old_clientgo_candidates(if_needed: bool) -> int:
    """Build the old client-go peers (one per release in `binaries.OLD_CLIENTGO_RELEASES`)
    into the cache folder, each unless it is there and built from the current sources."""
    missing = [
        release
        for release in binaries.OLD_CLIENTGO_RELEASES
        if binaries.find_old_clientgo_candidate(OLD_CLIENTGO_SOURCE, release) is None
    ]
    if not missing:
        if not if_needed:
            progress("reusing the old client-go candidates (built from tests/peers/clientgo_old)")
        return 0
    if not (OLD_CLIENTGO_SOURCE / "main.go").is_file():
        progress(f"no {OLD_CLIENTGO_SOURCE}: the old-lock interop tests will be skipped")
        return 0
    if shutil.which("go") is None:
        message = (
            "Go is not installed to build the old client-go candidates of the interop tests "
            f"(tests/peers/clientgo_old -> {binaries.cache_dir()})"
        )
        return _package_build.without_go(message, "old-lock interop tests")

    def step() -> None:
        for release in missing:
            build_old_clientgo(binaries.cache_dir(), release)

    return _package_build.run_build(step)


def toxiproxy(if_needed: bool) -> int:
    """Toxiproxy's server for the network-fault tests: reuse or build (`ensure_toxiproxy`)."""
    return _package_build.ensure_toxiproxy(if_needed)


if __name__ == "__main__":
    sys.exit(main())
