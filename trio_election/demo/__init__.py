"""The demo: candidates elect a leader, the leader is killed, a follower takes over.

    trio-election demo              # on a local control plane when one can be built
                                    # here, else in-process on a MemoryLock
    trio-election demo --memory     # in-process candidates on a MemoryLock
    python -m trio_election.demo    # the same as `trio-election demo`

It shows every change of leader as it happens, then a timeline of who led when, and
checks that no two candidates ever led at once. A crash (no release) is followed by a
takeover once the lease has run out; a graceful stop hands over at once.

The control plane's binaries (kube-apiserver, etcd) are built from Go modules the first
time, when Go is installed (about six minutes on two cores; `--no-build` skips that), and
reused afterwards; see `trio-election control-plane --help`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, NoReturn

import trio

from trio_election._core._exceptions import ConfigError
from trio_election._core._timing import Timing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trio_election._history import History

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """The command's rule for bad input: one line, status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        _fail(self.prog, f"{message} (see `{self.prog} --help`)")


def _fail(prog: str, message: str) -> NoReturn:
    name = "trio-election" if prog.startswith("trio-election") else prog
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _candidates(text: str) -> int:
    count = int(text) if text.strip().isdigit() else -1
    if count < 2:
        raise argparse.ArgumentTypeError(
            f"give at least 2, got {text!r}: the demo stops the leader and shows another "
            "candidate take over"
        )
    return count


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("mode", nargs="?", choices=["auto", "candidate"], default="auto")
    parser.add_argument("--memory", action="store_true", help="use a MemoryLock in-process")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="never build the control plane (use it when it is there, else a MemoryLock)",
    )
    parser.add_argument("--candidates", type=_candidates, default=3, help="2 or more")
    parser.add_argument("--lease-duration", type=float, default=4.0)
    parser.add_argument("--renew-deadline", type=float, default=3.0)
    parser.add_argument("--retry-period", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lock", help=argparse.SUPPRESS)
    parser.add_argument("--identity", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m trio_election.demo") -> int:
    args = _parser(prog).parse_args(argv)
    timing = {
        "lease_duration": args.lease_duration,
        "renew_deadline": args.renew_deadline,
        "retry_period": args.retry_period,
    }
    try:
        Timing.validate(**timing)
    except ConfigError as exc:
        _fail(
            prog,
            f"{exc}; set them with --lease-duration, --renew-deadline and --retry-period "
            f"(the demo's defaults: 4, 3 and 1 seconds)",
        )
    logging.basicConfig(level=logging.WARNING, format="          log: %(message)s")
    if args.mode == "candidate":
        from ._candidate import run_candidate

        trio.run(run_candidate, args.lock, args.identity, args.kubeconfig, timing)
        return 0
    if not args.memory:
        plane = _start_control_plane(build=not args.no_build)
        if plane is not None:
            try:
                return _show(_run_cluster(plane, args.candidates, timing))
            finally:
                plane.stop()
    return _show(_run_memory(args.candidates, timing, args.seed))


def _start_control_plane(*, build: bool) -> ControlPlane | None:
    """A started control plane, or None (having said why) to run on a MemoryLock."""
    import shutil

    from trio_election._controlplane._binaries import MissingBinaries, cache_dir, find_binaries
    from trio_election._controlplane._control_plane import ControlPlane

    if find_binaries() is None and build and shutil.which("go") is not None:
        from trio_election._controlplane._build import ensure_control_plane

        print(
            f"building kube-apiserver and etcd from Go modules into {cache_dir()} "
            "(once; about six minutes on two cores; Ctrl-C stops it, the next run resumes)",
            flush=True,
        )
        if ensure_control_plane(if_needed=False) != 0:
            print("the build failed (see above); running on a MemoryLock instead", flush=True)
            return None
    print("starting a local control plane (kube-apiserver + etcd) ...", flush=True)
    try:
        return ControlPlane.start()
    except MissingBinaries as exc:
        print(f"no control plane here ({exc}); running on a MemoryLock instead", flush=True)
    except ModuleNotFoundError as exc:
        print(
            f"no control plane here (starting one needs {exc.name!r}: "
            f"pip install 'trio-election[control-plane]'); "
            "running on a MemoryLock instead",
            flush=True,
        )
    return None


def _run_cluster(
    plane: ControlPlane, candidates: int, timing: dict[str, float]
) -> tuple[History, float, float]:
    from ._cluster import run_cluster_demo

    return trio.run(run_cluster_demo, plane, candidates, timing)


def _run_memory(
    candidates: int, timing: dict[str, float], seed: int
) -> tuple[History, float, float]:
    from ._memory import run_memory_demo

    async def run() -> tuple[History, float, float]:
        start = trio.current_time()
        history = await run_memory_demo(candidates, timing, seed)
        return history, start, trio.current_time()

    return trio.run(run)


def _show(result: tuple[History, float, float]) -> int:
    from ._timeline import timeline

    history, start, end = result
    print("\ntimeline (# = leading):")
    print(timeline(history.intervals, start, end))
    history.assert_one_leader()
    print("never two leaders at once: checked over every interval above")
    return 0


if TYPE_CHECKING:
    from trio_election._controlplane._control_plane import ControlPlane
