"""Build kube-apiserver, kubectl and etcd from Go modules into the binaries' cache folder.

What `trio-election control-plane build` runs (and `scripts/build_control_plane.py`, which
adds the interop tests' client-go peer), so that `trio-election demo` and
`trio_election.testing.ControlPlane` work from a plain `pip install`, the way
controller-runtime's `setup-envtest` fetches envtest's binaries. Here nothing is downloaded
but Go modules: the binaries are built with the local Go toolchain.

`k8s.io/kubernetes` cannot be built with `go install pkg@version`: its go.mod points its
staging modules (`k8s.io/api`, `k8s.io/apiserver`, ...) at `./staging/...`, and replace lines
only count in the main module. So this writes a small module of our own that requires
`k8s.io/kubernetes` and replaces every staging module with its published `v0.X.Y` twin,
copying the release's `go` and `godebug` lines, then builds the three commands in it. etcd
is the one that release pins (`go.etcd.io/etcd/server/v3`, 3.6.x), built in the same module.

Toxiproxy's server (`build_toxiproxy`, for the network-fault tests) is a plain
`go install <module>/cmd/server@<version>` into the same folder.

Standard library only, and only relative imports of `._binaries`: the build script loads
this file without importing the package (and so without its dependencies).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import _binaries as binaries

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "COMMANDS",
    "K8S",
    "BuildError",
    "build",
    "build_toxiproxy",
    "check_go",
    "download_release_gomod",
    "ensure_control_plane",
    "ensure_toxiproxy",
    "etcd_version",
    "go_env",
    "go_version",
    "ldflags",
    "parse_gomod",
    "progress",
    "run_go",
    "write_build_module",
]

K8S = "k8s.io/kubernetes"
COMMANDS = {
    "kube-apiserver": f"{K8S}/cmd/kube-apiserver",
    "kubectl": f"{K8S}/cmd/kubectl",
    "etcd": binaries.ETCD_MODULE,
}
_START = time.monotonic()


class BuildError(Exception):
    """A build that cannot go on; the message says why and what to do."""


def progress(message: str) -> None:
    print(f"[control-plane {time.monotonic() - _START:6.1f}s] {message}", flush=True)


def go_env(build_dir: Path | None = None, *, mod: str = "mod") -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS=f"-mod={mod}", GOWORK="off")
    if build_dir is not None:
        env["PWD"] = str(build_dir)
    return env


def run_go(args: list[str], cwd: Path, *, capture: bool = False, mod: str = "mod") -> str:
    """Run `go ARGS`; its stderr goes to ours (download progress) unless captured."""
    done = subprocess.run(
        ["go", *args],
        cwd=cwd,
        env=go_env(cwd, mod=mod),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr or "").strip()[-2000:] if capture else "(see above)"
        raise BuildError(f"`go {' '.join(args)}` failed:\n{detail}")
    return done.stdout


def check_go() -> None:
    if shutil.which("go") is None:
        raise BuildError(
            "Go is not installed (no `go` on PATH). Install Go >= 1.26 from "
            "https://go.dev/dl/, or set $KUBEBUILDER_ASSETS to a folder holding "
            "kube-apiserver and etcd."
        )


def without_go(message: str, skipped: str) -> int:
    """Go is missing to build something for the tests: an exit status. Under `CI=true`,
    where every test must run, an error (1); else a line saying which tests are skipped (0)."""
    if os.environ.get("CI") == "true":
        print(f"error: CI=true: {message}", file=sys.stderr)
        return 1
    print(f"{skipped} will be skipped: {message}")
    return 0


def run_build(step: Callable[[], None], *, interrupted: str = "interrupted") -> int:
    """Run one build step: an exit status, with a `BuildError`'s reason and fix on stderr."""
    try:
        step()
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return 0


def go_version() -> tuple[int, ...]:
    out = subprocess.run(
        ["go", "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=True
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", out)
    if match is None:  # a development toolchain: trust it
        return (999,)
    return tuple(int(part or 0) for part in match.groups())


def download_release_gomod(work: Path) -> str:
    """The text of `k8s.io/kubernetes`'s go.mod at the pinned release, via the module proxy."""
    progress(f"reading {K8S}@{binaries.K8S_VERSION}'s go.mod from the Go module proxy")
    target = f"{K8S}@{binaries.K8S_VERSION}"
    done = subprocess.run(
        ["go", "mod", "download", "-json", target],
        cwd=work,
        env=go_env(work),
        capture_output=True,
        text=True,
        check=False,
    )
    info: dict[str, str] = {}
    with contextlib.suppress(json.JSONDecodeError):
        info = json.loads(done.stdout) if done.stdout.strip() else {}
    if done.returncode != 0 or "GoMod" not in info:
        proxy = subprocess.run(
            ["go", "env", "GOPROXY"], env=go_env(), capture_output=True, text=True, check=False
        ).stdout.strip()
        reason = info.get("Error") or done.stderr.strip()[-1000:]
        raise BuildError(
            f"cannot fetch {target} from the Go module proxy (GOPROXY={proxy or 'unset'}): "
            f"{reason}\nThe build needs a Go module proxy that serves the k8s.io and "
            "go.etcd.io modules (see `go help goproxy`)."
        )
    return Path(info["GoMod"]).read_text()


def parse_gomod(text: str) -> tuple[str, list[str], list[str]]:
    """The `go` version, the `godebug` settings and the staging modules replaced to ./staging."""
    go_line = ""
    godebug: list[str] = []
    staging: list[str] = []
    block = ""
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = ""
                continue
            words = f"{block} {line}"
        else:
            match = re.fullmatch(r"(\w+)\s*\(", line)
            if match:
                block = match.group(1)
                continue
            words = line
        verb, _, rest = words.partition(" ")
        rest = rest.strip()
        if verb == "go":
            go_line = rest
        elif verb == "godebug":
            godebug.append(rest)
        elif verb == "replace":
            old, _, new = rest.partition("=>")
            if new.strip().startswith("./staging/"):
                staging.append(old.split()[0])
    if not go_line or not staging:
        raise BuildError(f"unexpected {K8S} go.mod: no `go` line or no staging replaces")
    return go_line, godebug, sorted(staging)


def write_build_module(
    build_dir: Path, go_line: str, godebug: list[str], staging: list[str]
) -> None:
    staging_version = "v0." + binaries.K8S_VERSION.removeprefix("v1.")
    lines = [
        "// Generated by trio-election's control-plane build: builds the control plane binaries.",
        "module trio-election.invalid/control-plane-build",
        "",
        f"go {go_line}",
        "",
    ]
    if godebug:
        lines += ["godebug (", *(f"\t{setting}" for setting in godebug), ")", ""]
    lines += [f"require {K8S} {binaries.K8S_VERSION}", "", "replace ("]
    lines += [f"\t{module} => {module} {staging_version}" for module in staging]
    lines += [")", ""]
    build_dir.mkdir(parents=True, exist_ok=True)
    gomod = build_dir / "go.mod"
    new = "\n".join(lines)
    if not gomod.exists() or not (build_dir / "go.sum").exists():
        gomod.write_text(new)
        (build_dir / "go.sum").unlink(missing_ok=True)
    elif not gomod.read_text().startswith(new.split("require", 1)[0]):
        gomod.write_text(new)


def ldflags(name: str) -> str:
    if name == "etcd":
        return "-s -w"
    major, minor = binaries.K8S_VERSION.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={binaries.K8S_VERSION}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build(bin_dir: Path) -> None:
    """Build the three binaries into `bin_dir`, then write the stamp that makes them count.

    Picks up where an interrupted build stopped (Go's caches keep what was done). Raises
    `BuildError` with the reason and the fix."""
    check_go()
    version = go_version()
    progress(f"building into {bin_dir} with go {'.'.join(map(str, version))}")
    build_dir = bin_dir / "build-module"
    build_dir.mkdir(parents=True, exist_ok=True)
    go_line, godebug, staging = parse_gomod(download_release_gomod(build_dir))
    wanted = tuple(int(part) for part in re.findall(r"\d+", go_line)[:3])
    if version < wanted[: len(version)]:
        raise BuildError(
            f"{K8S}@{binaries.K8S_VERSION} needs go >= {go_line}, this is "
            f"{'.'.join(map(str, version))}: install a newer Go from https://go.dev/dl/"
        )
    progress(f"build module: go {go_line}, {len(godebug)} godebug, {len(staging)} staging")
    write_build_module(build_dir, go_line, godebug, staging)
    targets = [f"{package}@{binaries.K8S_VERSION}" for package in list(COMMANDS.values())[:2]]
    progress(f"go get {' '.join(targets)} (downloads the modules on a cold cache)")
    run_go(["get", *targets], build_dir)
    for name, package in COMMANDS.items():
        progress(f"go build {package} -> {name}")
        partial = bin_dir / f".{name}.partial"
        args = ["build", "-mod=mod", "-trimpath", "-ldflags", ldflags(name)]
        run_go([*args, "-o", str(partial), package], build_dir)
        partial.replace(bin_dir / name)
    stamp = {"kubernetes": binaries.K8S_VERSION, "etcd": etcd_version(bin_dir / "etcd")}
    (bin_dir / binaries.STAMP).write_text(json.dumps(stamp) + "\n")
    progress(f"done: {stamp}")


def etcd_version(etcd: Path) -> str:
    out = subprocess.run([etcd, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"etcd Version: (\S+)", out.stdout)
    return match.group(1) if match else "unknown"


def ensure_control_plane(if_needed: bool) -> int:
    """Reuse the binaries when they are there, else build them; an exit status.

    `if_needed`: stay quiet when they are there, and without Go say how to get them and
    return 0 (1 under `CI=true`, where the control-plane tests must run)."""
    found = binaries.find_binaries()
    if found is not None:
        if not if_needed:
            kubectl = "" if found.kubectl else " (no kubectl)"
            progress(f"reusing the binaries in {found.bin_dir}{kubectl} ({found.source})")
        return 0
    if os.environ.get("KUBEBUILDER_ASSETS"):
        print(f"error: {binaries.missing_message()}", file=sys.stderr)
        return 1
    if if_needed and shutil.which("go") is None:
        message = (
            "the control plane binaries are missing and Go is not installed to build them; "
            f"{binaries.missing_message()}"
        )
        return without_go(message, "control plane tests")
    return run_build(
        lambda: build(binaries.cache_dir()),
        interrupted="interrupted; the next run picks up where this one stopped",
    )


def build_toxiproxy(bin_dir: Path) -> None:
    """`go install` Toxiproxy's server at `binaries.TOXIPROXY_VERSION` into `bin_dir`, then
    write the stamp naming the release. Raises `BuildError` with the reason and the fix."""
    check_go()
    version = binaries.TOXIPROXY_VERSION
    package = f"{binaries.TOXIPROXY_MODULE}/cmd/server@{version}"
    progress(f"go install {package} -> {binaries.TOXIPROXY}")
    work = bin_dir / ".toxiproxy-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = go_env(work)
    env["GOBIN"] = str(work)
    flags = f"-s -w -X {binaries.TOXIPROXY_MODULE}.Version={version}"
    done = subprocess.run(
        ["go", "install", "-trimpath", "-ldflags", flags, package],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildError(
            f"`go install {package}` failed:\n{done.stderr.strip()[-2000:]}\nIt needs a Go "
            "module proxy that serves the module (see `go help goproxy`)."
        )
    (work / "server").replace(bin_dir / binaries.TOXIPROXY)
    (bin_dir / f"{binaries.TOXIPROXY}.version").write_text(version + "\n")
    shutil.rmtree(work, ignore_errors=True)
    progress(f"built {bin_dir / binaries.TOXIPROXY} ({version})")


def ensure_toxiproxy(if_needed: bool) -> int:
    """Reuse Toxiproxy's server when the pinned release is there, else build it; an exit
    status. Without Go: a message and 0, or 1 under `CI=true` (`if_needed` only quiets the
    message that it is reused)."""
    found = binaries.find_toxiproxy()
    if found is not None:
        if not if_needed:
            progress(f"reusing {found} ({binaries.TOXIPROXY_VERSION})")
        return 0
    if shutil.which("go") is None:
        message = (
            "Go is not installed to build Toxiproxy's server for the network-fault tests "
            f"({binaries.TOXIPROXY_MODULE}@{binaries.TOXIPROXY_VERSION} -> {binaries.cache_dir()})"
        )
        return without_go(message, "network-fault tests")

    def step() -> None:
        bin_dir = binaries.cache_dir()
        bin_dir.mkdir(parents=True, exist_ok=True)
        build_toxiproxy(bin_dir)

    return run_build(step)
