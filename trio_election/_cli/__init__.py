"""The `trio-election` command (also `python -m trio_election`).

One module per subcommand: `run` (`._run`), `status` (`._status`), `demo`
(`trio_election.demo`), `control-plane` (`._controlplane`), `fence` (`._fence`). Bad input
ends with one line,
``trio-election: error: <what is wrong and how to fix it>``, and status 2; an election that
cannot go on (a missing permission, an unreachable apiserver for `status`) with one line and
status 1. No tracebacks for either.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, cast

import trio_election as te

from . import _controlplane, _fence, _run, _status
from ._options import CommandError, Parser, one_line, split_command

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

PROG = "trio-election"

_TIMING_HINT = (
    "; set them with --leader-elect-lease-duration, --leader-elect-renew-deadline and "
    "--leader-elect-retry-period"
)


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Leader election on Kubernetes for trio programs: run a command only "
        "while leader, show who leads, try it all on a local control plane.",
        epilog="`trio-election COMMAND --help` tells more. The library: import trio_election.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {te.__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    _run.add_parser(subparsers)
    _status.add_parser(subparsers)
    subparsers.add_parser(
        "demo",
        help="candidates elect a leader on a local control plane; the leader is killed",
        add_help=False,
    )
    _controlplane.add_parser(subparsers)
    _fence.add_parser(subparsers)
    for choice in subparsers.choices.values():
        choice.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="log more (-v: the library's INFO lines, -vv: DEBUG)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["demo"]:  # the demo parses its own options
        from trio_election.demo import main as demo_main

        try:
            return demo_main(args[1:], prog=f"{PROG} demo")
        except SystemExit as exc:  # --help, or argparse's usage errors
            return exc.code if isinstance(exc.code, int) else 0
        except KeyboardInterrupt:
            return 130
    before, command = split_command(args)
    try:
        options = build_parser().parse_args(before)
        options.command = command
        _configure_logging(options.verbose)
        status: int = options.handler(options)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        return _report(exc)
    return status


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trio-election: %(levelname)s: %(message)s"))
    for name in ("trio_election",):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [exc]


def _report(exc: BaseException) -> int:
    """Print one line for an expected failure and return its status; re-raise anything else."""
    leaves = _leaves(exc)
    known = [leaf for leaf in leaves if isinstance(leaf, CommandError | te.ElectionError)]
    if not known:
        exits = [leaf for leaf in leaves if isinstance(leaf, SystemExit)]
        if exits:
            code = exits[0].code
            return code if isinstance(code, int) else 1
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            return 130
        raise exc
    first = known[0]
    message = one_line(str(first)) or type(first).__name__
    if isinstance(first, CommandError):
        status = first.status
    elif isinstance(first, te.ConfigError):  # KubeConfigError too: bad input
        status = 2
        if message.startswith(("lease_duration", "renew_deadline", "retry_period")):
            message += _TIMING_HINT
    else:
        status = 1
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
