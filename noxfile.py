"""The project's single entry point: `nox -s demo`, `nox -s tests`, `nox -s lint`, ..."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install(session: nox.Session, *groups: str) -> None:
    """Install the project (editable) and the named dependency groups."""
    deps: list[str] = []
    for group in groups:
        deps.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".", *deps)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, the real control-plane tests included when the binaries exist."""
    install(session, "test")
    session.run("python", "scripts/build_control_plane.py", "--if-needed", external=False)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright (strict)."""
    install(session, "typecheck")
    session.run("mypy")
    session.run("pyright")


@nox.session
def chaos(session: nox.Session) -> None:
    """Generated fault schedules at 32 times the normal count (over 50,000), the scale
    test for a simulated hour; prints schedules, overlaps and recovery times. Then the long
    mixed-fleet runs of tests/interop and tests/control_plane (marked `chaos`), and every
    network fault, crash and outage of tests/chaos on a real control plane through
    Toxiproxy, each run $TRIO_ELECTION_CHAOS_RUNS times (default 3, about 12 minutes),
    with a table of overlaps and recovery times."""
    install(session, "test")
    session.run(
        "pytest",
        "tests/property",
        "tests/test_scale.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"TRIO_ELECTION_HYPOTHESIS_PROFILE": "chaos"},
    )
    session.run("python", "scripts/build_control_plane.py", "--if-needed", external=False)
    session.run(
        "pytest", "tests/interop", "tests/control_plane", "-m", "chaos", "-p", "no:cacheprovider"
    )
    session.run(
        "pytest",
        "tests/chaos",
        "-m",
        "chaos or not chaos",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"TRIO_ELECTION_CHAOS_RUNS": os.environ.get("TRIO_ELECTION_CHAOS_RUNS", "3")},
    )


@nox.session
def examples(session: nox.Session) -> None:
    """Run every program in examples/ the way the test suite does."""
    install(session, "test")
    session.run("pytest", "tests/test_examples.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Candidates electing a leader on a local control plane; the leader is killed and a
    follower takes over: `trio-election demo`. It builds the control plane first when Go is
    there (about 6 minutes, once); without Go the candidates share a MemoryLock in one
    process."""
    install(session, "test")
    session.run("trio-election", "demo", *session.posargs, env=dict(os.environ))


@nox.session
def control_plane(session: nox.Session) -> None:
    """A local etcd + kube-apiserver on loopback until Ctrl-C; prints the admin kubeconfig."""
    install(session, "test")
    session.run("python", "scripts/build_control_plane.py", external=False)
    # Ctrl-C reaches the control plane too; give it time to stop and remove its files
    session.run(
        "python",
        "-m",
        "trio_election.testing",
        *session.posargs,
        interrupt_timeout=30,
        terminate_timeout=30,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Head-to-head benchmarks against client-go and the `kubernetes` Python client on a
    local control plane, ours under trio, asyncio and uvloop (about 45 minutes; `-- --help`
    for the options). Not a default session. Writes benchmarks/results/latest.{md,json,png}."""
    install(session, "bench")
    session.run("python", "scripts/build_control_plane.py", external=False)
    session.run("python", "-m", "benchmarks", *session.posargs)
