"""Where the control-plane binaries live: one lookup for the build script and the tests.

Standard library only: `scripts/build_control_plane.py` loads this file (and `_build.py`)
by path, without importing the package.

The same folder holds the client-go candidate of the interop tests (tests/peers/clientgo),
built beside the control plane and found again by `find_clientgo_candidate`; the old
client-go candidates of the interop tests on removed locks (tests/peers/clientgo_old, one
binary per client-go release, `find_old_clientgo_candidate`); and Toxiproxy's server for
the network-fault tests (`find_toxiproxy`).

Order of lookup:

1. `$KUBEBUILDER_ASSETS` (controller-runtime's envtest convention): a folder holding
   `kube-apiserver` and `etcd`, optionally `kubectl`. When it is set, nothing else is used.
2. `$TRIO_ELECTION_K8S_BIN`, else `$XDG_CACHE_HOME/trio-election/k8s/<version>/`
   (`~/.cache/...` by default): the folder `trio-election control-plane build` builds into.
   Binaries there count only once the build finished (a stamp file written last).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import final

__all__ = [
    "BUILD_COMMAND",
    "CLIENTGO_CANDIDATE",
    "CLIENTGO_SOURCES",
    "ETCD_MODULE",
    "K8S_VERSION",
    "OLD_CLIENTGO_RELEASES",
    "STAMP",
    "TOXIPROXY",
    "TOXIPROXY_MODULE",
    "TOXIPROXY_VERSION",
    "Binaries",
    "MissingBinaries",
    "cache_dir",
    "clientgo_digest",
    "find_binaries",
    "find_clientgo_candidate",
    "find_old_clientgo_candidate",
    "find_toxiproxy",
    "missing_message",
    "old_clientgo_name",
    "old_clientgo_sources",
    "sources_digest",
]

K8S_VERSION = "v1.36.3"
"""The `k8s.io/kubernetes` release built; its go.mod pins the etcd (3.6.x) built with it."""

ETCD_MODULE = "go.etcd.io/etcd/server/v3"

STAMP = ".complete"
"""Written into the cache folder after every binary is in place."""

BUILD_COMMAND = "trio-election control-plane build"
"""How a user builds them: the command installed with the package (in a checkout,
`python scripts/build_control_plane.py` also builds the interop tests' client-go peer)."""

_REQUIRED = ("kube-apiserver", "etcd")

CLIENTGO_CANDIDATE = "clientgo-candidate"
"""The client-go peer's file name in `cache_dir()`; `<name>.sha256` beside it says what
sources it was built from."""

CLIENTGO_SOURCES = ("go.mod", "go.sum", "main.go")

OLD_CLIENTGO_RELEASES = {"v0.23": "go.v023.mod", "v0.27": "go.mod"}
"""The old client-go candidate's builds (tests/peers/clientgo_old): the client-go release
line and the go.mod file (`go build -modfile=...`) that pins it. v0.23 is the last line with
the `endpoints` lock, v0.27 the last with `endpointsleases`."""

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"
"""Built from the Go module proxy (`go install <module>/cmd/server@<version>`)."""

TOXIPROXY = "toxiproxy-server"
"""Toxiproxy's server in `cache_dir()`; `<name>.version` beside it says which release."""


class MissingBinaries(FileNotFoundError):
    """kube-apiserver or etcd is not there; the message says how to get them."""


@final
@dataclass(frozen=True, slots=True)
class Binaries:
    """The binaries found: `kubectl` is None when only `$KUBEBUILDER_ASSETS` lacks it."""

    bin_dir: Path
    kube_apiserver: Path
    etcd: Path
    kubectl: Path | None
    source: str
    """Where they came from: `"KUBEBUILDER_ASSETS"` or `"cache"`."""


def cache_dir() -> Path:
    """The folder the build script writes into (and reads back on the next run)."""
    explicit = os.environ.get("TRIO_ELECTION_K8S_BIN")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "trio-election" / "k8s" / K8S_VERSION


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binaries() -> Binaries | None:
    """The binaries to use, or None when they are missing (see the module docstring)."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folder = Path(assets).expanduser().absolute()
        if not all(_executable(folder / name) for name in _REQUIRED):
            return None
        kubectl = folder / "kubectl"
        return Binaries(
            bin_dir=folder,
            kube_apiserver=folder / "kube-apiserver",
            etcd=folder / "etcd",
            kubectl=kubectl if _executable(kubectl) else None,
            source="KUBEBUILDER_ASSETS",
        )
    folder = cache_dir()
    names = (*_REQUIRED, "kubectl")
    if not (folder / STAMP).is_file() or not all(_executable(folder / n) for n in names):
        return None
    return Binaries(
        bin_dir=folder,
        kube_apiserver=folder / "kube-apiserver",
        etcd=folder / "etcd",
        kubectl=folder / "kubectl",
        source="cache",
    )


def missing_message() -> str:
    """One line saying what is missing and how to get it."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return (
            f"$KUBEBUILDER_ASSETS={assets} lacks an executable kube-apiserver or etcd; "
            f"fix it or unset it and run `{BUILD_COMMAND}` (needs Go)"
        )
    return (
        f"no kube-apiserver/etcd in {cache_dir()}: run `{BUILD_COMMAND}` (needs Go and "
        "the Go module proxy) or set $KUBEBUILDER_ASSETS to a folder holding them"
    )


def clientgo_digest(source_dir: Path) -> str:
    """A SHA-256 over the client-go candidate's sources (`CLIENTGO_SOURCES` in `source_dir`)."""
    digest = hashlib.sha256()
    for name in CLIENTGO_SOURCES:
        digest.update(f"{name}\0".encode())
        digest.update((source_dir / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def sources_digest(source_dir: Path, names: tuple[str, ...]) -> str:
    """A SHA-256 over the files `names` in `source_dir` (names and contents)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\0".encode())
        digest.update((source_dir / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def old_clientgo_name(release: str) -> str:
    """The file name of the old client-go candidate built for `release` ("v0.23")."""
    if release not in OLD_CLIENTGO_RELEASES:
        known = ", ".join(OLD_CLIENTGO_RELEASES)
        raise ValueError(f"no old client-go build {release!r}; known: {known}")
    return f"clientgo-{release}-candidate"


def old_clientgo_sources(release: str) -> tuple[str, ...]:
    """The files the `release` build reads: main.go, its go.mod file and that file's go.sum."""
    modfile = OLD_CLIENTGO_RELEASES[release]
    return ("main.go", modfile, modfile.removesuffix(".mod") + ".sum")


def find_old_clientgo_candidate(source_dir: Path, release: str) -> Path | None:
    """The old client-go candidate for `release` in `cache_dir()` if it was built from the
    sources in `source_dir` as they are now; None when it is missing or older."""
    binary = cache_dir() / old_clientgo_name(release)
    stamp = binary.with_name(f"{binary.name}.sha256")
    if not _executable(binary) or not stamp.is_file():
        return None
    if stamp.read_text().strip() != sources_digest(source_dir, old_clientgo_sources(release)):
        return None
    return binary


def find_toxiproxy() -> Path | None:
    """Toxiproxy's server in `cache_dir()` if it is the pinned release; None otherwise."""
    binary = cache_dir() / TOXIPROXY
    stamp = binary.with_name(f"{TOXIPROXY}.version")
    if not _executable(binary) or not stamp.is_file():
        return None
    if stamp.read_text().strip() != TOXIPROXY_VERSION:
        return None
    return binary


def find_clientgo_candidate(source_dir: Path) -> Path | None:
    """The client-go candidate in `cache_dir()` if it was built from the sources in
    `source_dir` as they are now; None when it is missing or older."""
    binary = cache_dir() / CLIENTGO_CANDIDATE
    stamp = binary.with_name(f"{CLIENTGO_CANDIDATE}.sha256")
    if not _executable(binary) or not stamp.is_file():
        return None
    if stamp.read_text().strip() != clientgo_digest(source_dir):
        return None
    return binary
