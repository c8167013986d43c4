"""Every Python block and every `$ trio-election ...` example of README.md and docs/, run as
written.

A block's kind is the HTML comment on the line before its fence (tests/README.md lists them):
no comment is a program on `MemoryLock` or `FakeKubeApi`, run as a process that must exit 0
and print nothing on stderr (a WARNING is a failure); `control plane` the same with
KUBECONFIG set to the real apiserver's admin; `control plane: until it leads` a program that
runs forever, stopped by SIGTERM once it logged that it leads and renewed its Lease;
`control plane: pytest` a test module whose `test_*` functions get the `control_plane`
fixture; `run by <path>` a block that the test file at <path> runs; `fragment` a block that
is not meant to run (it must compile).

Shell examples are run with the output they show compared line by line; `…` and `<…>` in the
shown output stand for anything.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from _pytest.mark.structures import ParameterSet

    from trio_election.testing import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WITHIN = 60.0  # imports of the library and a first election on a busy 2-core machine
MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
RUN_BY = re.compile(r"^run by (\S+)")
NOT_RUN = re.compile(r"^not run: \S")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where its fence is, its language, its text, its marker comment."""

    document: Path
    line: int
    language: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks_of(document: Path) -> list[Block]:
    """The fenced blocks of `document`, with the marker on the line before each fence."""
    lines = document.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        marker = MARKER.match(lines[index - 1].strip()) if index > 0 else None
        found.append(
            Block(
                document,
                index + 1,
                fence.group(1),
                "\n".join(lines[index + 1 : end]) + "\n",
                marker.group(1) if marker else None,
            )
        )
        index = end + 1
    return found


ALL = [block for document in DOCUMENTS for block in blocks_of(document)]
PYTHON = [block for block in ALL if block.language == "python"]
CONSOLE = [b for b in ALL if b.language == "console" and "\n$ trio-election " in "\n" + b.code]


def by_kind(kind: Callable[[str | None], bool]) -> list[ParameterSet]:
    """The Python blocks whose marker `kind` accepts, as parameters named by file and line."""
    return [pytest.param(b, id=b.where) for b in PYTHON if kind(b.marker)]


def environment(kubeconfig: Path | None, home: Path) -> dict[str, str]:
    """This process's environment without proxies, with `kubeconfig` or none at all."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig", "home"}
    env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
    env["HOME"] = str(home)  # no ~/.kube/config of the machine's
    env["KUBECONFIG"] = str(kubeconfig) if kubeconfig else str(home / "no-such.kubeconfig")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_program(block: Block, tmp_path: Path, kubeconfig: Path | None) -> None:
    program = tmp_path / "program.py"
    program.write_text(block.code, encoding="utf-8")
    env = environment(kubeconfig, tmp_path)
    if kubeconfig is None:
        env.pop("KUBECONFIG")
    done = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WITHIN,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), f"{block.where} failed:\n{done.stderr}"


def test_every_block_has_a_known_kind() -> None:
    known = {None, "fragment", "control plane", "control plane: until it leads"}
    known |= {"control plane: pytest"}
    unknown = [
        (b.where, b.marker)
        for b in PYTHON
        if b.marker not in known and not (b.marker and RUN_BY.match(b.marker))
    ]
    assert unknown == []
    assert [b.where for b in CONSOLE if b.marker and not NOT_RUN.match(b.marker)] == []
    # fragments stay few: every other block runs
    assert len([b for b in PYTHON if b.marker == "fragment"]) <= 5


@pytest.mark.parametrize("block", by_kind(lambda m: m is not None and RUN_BY.match(m) is not None))
def test_a_block_run_elsewhere_names_a_test_that_reads_it(block: Block) -> None:
    """The named file exists and reads this document (or one with this same block)."""
    assert block.marker is not None
    match = RUN_BY.match(block.marker)
    assert match is not None
    runner = ROOT / match.group(1)
    assert runner.is_file(), f"{block.where}: {match.group(1)} does not exist"
    text = runner.read_text(encoding="utf-8")
    read = [d for d in DOCUMENTS if d.name in text]
    same = [b for d in read for b in blocks_of(d) if b.code == block.code]
    assert block.document in read or same, f"{block.where}: {runner.name} does not read it"


@pytest.mark.parametrize("block", by_kind(lambda m: m == "fragment"))
def test_a_fragment_is_python_that_compiles(block: Block) -> None:
    """Not run, but no pseudo-code: it compiles (an `await` may stand outside a function)."""
    compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("block", by_kind(lambda m: m is None))
def test_a_program_runs_as_written(block: Block, tmp_path: Path) -> None:
    run_program(block, tmp_path, kubeconfig=None)


@pytest.mark.control_plane
@pytest.mark.parametrize("block", by_kind(lambda m: m == "control plane"))
def test_a_program_runs_as_written_on_the_apiserver(
    block: Block, tmp_path: Path, control_plane: ControlPlane
) -> None:
    run_program(block, tmp_path, kubeconfig=control_plane.admin_kubeconfig)


@pytest.mark.control_plane
@pytest.mark.parametrize("block", by_kind(lambda m: m == "control plane: pytest"))
def test_a_test_module_passes_on_the_apiserver(block: Block, control_plane: ControlPlane) -> None:
    namespace: dict[str, object] = {"__name__": "docs_sample"}
    exec(compile(block.code, block.where, "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert tests, f"{block.where} defines no test"
    for test in tests:
        test(control_plane)


@pytest.mark.control_plane
@pytest.mark.parametrize("block", by_kind(lambda m: m == "control plane: until it leads"))
def test_a_service_leads_and_stops_on_sigterm(
    block: Block, tmp_path: Path, control_plane: ControlPlane
) -> None:
    """Run with INFO logging on: once it logs that it became leader it must still run, and
    SIGTERM must end it with 143 (or 0), with no WARNING logged."""
    program = tmp_path / "program.py"
    program.write_text(block.code, encoding="utf-8")
    logged = (
        "import logging, runpy, sys; logging.basicConfig(level=logging.INFO);"
        " runpy.run_path(sys.argv[1], run_name='__main__')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", logged, str(program)],
        cwd=tmp_path,
        env=environment(control_plane.admin_kubeconfig, tmp_path),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    assert process.stderr is not None
    stderr = process.stderr

    def read() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + WITHIN
        while not any("became leader" in line for line in seen):
            try:
                seen.append(lines.get(timeout=1.0))
            except queue.Empty:
                if not reader.is_alive() or time.monotonic() > deadline:
                    pytest.fail(f"{block.where} did not lead:\n{''.join(seen)}")
        renews_once(control_plane, block)
        assert process.poll() is None, f"{block.where} ended by itself:\n{''.join(seen)}"
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=WITHIN)
        stderr.close()
    while not lines.empty():
        seen.append(lines.get())
    assert status in (143, 0), f"{block.where} exited {status}:\n{''.join(seen)}"
    assert not [line for line in seen if "WARNING" in line or "Traceback" in line]


def renews_once(control_plane: ControlPlane, block: Block) -> None:
    """Block until the Lease of `block`'s `te.elect("leases/<ns>/<name>")` is renewed by its
    holder (a watch event): the program still leads after its first renewal."""
    found = re.search(r'te\.elect\("leases/([-a-z0-9]+)/([-a-z0-9.]+)"', block.code)
    assert found, f"{block.where} elects no Lease by its string"
    path = f"/apis/coordination.k8s.io/v1/namespaces/{found.group(1)}/leases"
    with control_plane.http_client() as client:
        lease = client.get(f"{path}/{found.group(2)}").raise_for_status().json()
        holder, renewed = lease["spec"].get("holderIdentity"), lease["spec"].get("renewTime")
        assert holder, f"{block.where} no longer holds the Lease: {lease['spec']}"
        params = {
            "watch": "1",
            "fieldSelector": f"metadata.name={found.group(2)}",
            "resourceVersion": lease["metadata"]["resourceVersion"],
            "timeoutSeconds": str(int(WITHIN)),
        }
        with client.stream("GET", path, params=params, timeout=WITHIN + 5) as events:
            for line in events.iter_lines():
                spec = json.loads(line)["object"].get("spec", {})
                assert spec.get("holderIdentity") == holder, f"{block.where} let go: {spec}"
                if spec.get("renewTime") != renewed:
                    return
    pytest.fail(f"{block.where}: no renewal of {path}/{found.group(2)} within {WITHIN} s")


# ------------------------------------------------------------------ shell examples


def examples_of(block: Block) -> list[tuple[str, list[str]]]:
    """The `$ ...` lines of `block`, each with the output lines shown under it."""
    examples: list[tuple[str, list[str]]] = []
    for line in block.code.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            examples.append((line[2:], []))
        elif examples:
            examples[-1][1].append(line)
    return examples


def shown(line: str) -> re.Pattern[str]:
    """A shown output line as a pattern: `…` and `<…>` match anything."""
    parts = re.split(r"(…|<[^<>]*>)", line.rstrip())
    pattern = "".join(".*?" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(pattern + r"\s*")


def a_held_lease(control_plane: ControlPlane) -> None:
    """The Lease docs/command.md's `status` shows: held by a web replica, in its term 3."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "my-app"},
        "spec": {
            "holderIdentity": "web-7d9c_4f0e2b91",
            "leaseDurationSeconds": 15,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 3,
        },
    }
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    with control_plane.http_client() as client:
        client.delete(f"{path}/my-app")
        client.post(path, json=lease).raise_for_status()


def a_shard_group(control_plane: ControlPlane) -> None:
    """The group docs/command.md's `status --shards` shows: 4 shards over web-0 and web-1."""
    from trio_election._shards._kube import GROUP_LABEL, SHARDS_ANNOTATION, member_lease

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    leases: list[tuple[Mapping[str, object], Mapping[str, object]]] = []
    holders = [("web-0", 0), ("web-1", 1), ("web-1", 0), ("web-0", 2)]
    for shard, (holder, term) in enumerate(holders):
        record = {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": term,
        }
        leases.append(({"name": f"my-shards-shard-{shard}"}, record))
    for member in ("web-0", "web-1"):
        metadata = {
            "name": member_lease("my-shards", member),
            "labels": {GROUP_LABEL: "my-shards"},
            "annotations": {SHARDS_ANNOTATION: "4"},
        }
        spec = {"holderIdentity": member, "leaseDurationSeconds": 15, "renewTime": now}
        leases.append((metadata, spec))
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    with control_plane.http_client() as client:
        for meta, body_spec in leases:
            client.delete(f"{path}/{meta['name']}")
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": meta,
                "spec": body_spec,
            }
            client.post(path, json=body).raise_for_status()


SETUP: dict[str, Callable[[ControlPlane], None]] = {
    "trio-election status leases/default/my-app": a_held_lease,
    "trio-election status leases/default/my-shards --shards": a_shard_group,
}


@pytest.mark.control_plane
@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in CONSOLE])
def test_a_shell_example_prints_what_it_shows(
    block: Block, tmp_path: Path, control_plane: ControlPlane
) -> None:
    """Each command, in an empty directory, with the admin kubeconfig unless its comment says
    `without a kubeconfig`; its stdout and stderr together must be the lines shown."""
    if block.marker is not None:
        pytest.skip(f"{block.where}: {block.marker}")
    taken = socket.socket()  # what `--http 127.0.0.1:4040` is shown to meet
    try:
        taken.bind(("127.0.0.1", 4040))
        taken.listen()
    except OSError:
        pass  # already taken by another process: as the example says
    try:
        for command, output in examples_of(block):
            argv = shlex.split(command, comments=True)
            assert argv[0] == "trio-election"
            without = "without a kubeconfig" in command.partition("#")[2]
            setup = SETUP.get(" ".join(argv))
            if setup is not None:
                setup(control_plane)
            done = subprocess.run(
                [sys.executable, "-m", "trio_election", *argv[1:]],
                cwd=tmp_path,
                env=environment(None if without else control_plane.admin_kubeconfig, tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=WITHIN,
                check=False,
            )
            printed = done.stdout.rstrip("\n").split("\n")
            mismatch = len(printed) != len(output) or not all(
                shown(want).fullmatch(got) for want, got in zip(output, printed, strict=False)
            )
            assert not mismatch, (
                f"{block.where}: `{command}` printed\n{done.stdout}\nbut the docs show\n"
                + "\n".join(output)
            )
    finally:
        taken.close()
