"""The election options are defined once (`ElectionOptions`); every face follows that list.

- `elect()` and `open_election()` take each option as a keyword-only parameter with its
  default, and hand each one on unchanged; so does `open_shards()`, all but
  `on_leader_change` (each shard's election reports to the group), after `shards`;
- `ElectionConfig` has a field per option (all but `on_leader_change`, which
  `callbacks.on_new_leader` plays), and `LeaderElector.run()` hands each one on;
- the command has a flag for each option with a `Flag`, and hands its value on;
- the signatures written in docs/api.md, docs/client-go-api.md and docs/sharding.md are
  the code's.

An option added to `ElectionOptions` and missed by a face fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

import trio_election as te
from trio_election import _election
from trio_election._cli import _run, main
from trio_election._cli._options import CommandError, Parser
from trio_election._core._options import ElectionOptions, Flag, OptionSpec, option_specs
from trio_election._shards import _group
from trio_election.kube import KubeClient

if TYPE_CHECKING:
    from collections.abc import Callable

    import trio.testing

DOCS = Path(__file__).parent.parent / "docs"

SPECS = option_specs()
NAMES = [spec.name for spec in SPECS]

VALID = {"identity": "given-identity", "lease_duration": 31.0, "renew_deadline": 21.0}
"""Values other than the defaults that pass the checks (`retry_period` keeps its default:
one wrong pair would do). Every other option gets an object of its own."""


def _given() -> dict[str, object]:
    """A value for every option, none equal to its default."""
    values = {name: VALID.get(name, object()) for name in NAMES}
    values["retry_period"] = 3.0
    return values


def test_the_definition() -> None:
    assert NAMES == [
        "identity",
        "client",
        "lease_duration",
        "renew_deadline",
        "retry_period",
        "release_on_exit",
        "stop_on_sigterm",
        "events",
        "clock",
        "on_leader_change",
    ]
    defaults: ElectionOptions[object] = ElectionOptions()
    for spec in SPECS:
        assert getattr(defaults, spec.name) == spec.default
        assert spec.doc, spec.name
        if not isinstance(spec.command, Flag):
            assert spec.command, f"{spec.name}: say why the command has no flag"


def _keyword_options(fn: Callable[..., object]) -> dict[str, tuple[object, str]]:
    parameters = list(inspect.signature(fn).parameters.values())
    assert parameters[0].name == "lock"
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    rest = parameters[1:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), fn
    return {p.name: (p.default, p.annotation) for p in rest}


def _option_types() -> dict[str, str]:
    """The annotations of `ElectionOptions`, with the client's type set to `KubeClient`."""
    return {
        field.name: str(field.type).replace("ClientT", "KubeClient")
        for field in dataclasses.fields(ElectionOptions)
    }


@pytest.mark.parametrize("face", [te.elect, te.open_election], ids=["elect", "open_election"])
def test_elect_and_open_election_take_every_option(face: Callable[..., object]) -> None:
    got = _keyword_options(face)
    assert list(got) == NAMES, "keyword options differ from ElectionOptions"
    types = _option_types()
    for spec in SPECS:
        assert got[spec.name] == (spec.default, types[spec.name]), spec.name


def test_open_shards_takes_every_option_but_the_callback() -> None:
    got = _keyword_options(te.open_shards)
    assert got.pop("shards") == (inspect.Parameter.empty, "int")
    wanted = [name for name in NAMES if name != "on_leader_change"]
    assert list(got) == wanted, "keyword options differ from ElectionOptions"
    types = _option_types()
    for spec in SPECS:
        if spec.name in got:
            assert got[spec.name] == (spec.default, types[spec.name]), spec.name


def test_election_config_has_every_option_but_the_callback() -> None:
    fields = {f.name: f for f in dataclasses.fields(te.ElectionConfig)}
    wanted = {spec.name for spec in SPECS if spec.config}
    assert set(fields) - {"lock", "callbacks"} == wanted
    assert {spec.name for spec in SPECS if not spec.config} == {"on_leader_change"}
    types = _option_types()
    for spec in SPECS:
        if spec.config:
            assert fields[spec.name].default == spec.default, spec.name
            assert fields[spec.name].type == types[spec.name], spec.name


class _Opened(Exception):
    """Raised by the stand-in for the engine's opening, once it has seen the options."""


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[ElectionOptions[Any]]:
    """The options every face hands on to the one place where an election opens."""
    captured: list[ElectionOptions[Any]] = []

    def opening(lock: object, options: ElectionOptions[Any]) -> Any:
        captured.append(options)
        raise _Opened

    monkeypatch.setattr(_election, "_open", opening)
    return captured


def _assert_handed_on(options: ElectionOptions[Any], given: dict[str, object]) -> None:
    for name, value in given.items():
        assert getattr(options, name) is value, f"{name} is not handed on"


@pytest.mark.parametrize("face", [te.elect, te.open_election], ids=["elect", "open_election"])
async def test_elect_and_open_election_hand_every_option_on(
    face: Callable[..., Any], seen: list[ElectionOptions[Any]]
) -> None:
    given = _given()
    with pytest.raises(_Opened):
        async with face(te.MemoryLock(), **given):
            pass  # pragma: no cover
    [options] = seen
    _assert_handed_on(options, given)


async def test_open_shards_hands_every_option_on(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[tuple[object, ElectionOptions[Any]]] = []

    def opening(lock: object, shards: int, options: ElectionOptions[Any]) -> Any:
        captured.append((shards, options))
        raise _Opened

    monkeypatch.setattr(_group, "open_shards_with", opening)
    given = {name: value for name, value in _given().items() if name != "on_leader_change"}
    with pytest.raises(_Opened):
        async with te.open_shards(te.MemoryLockGroup(), shards=7, **given):  # type: ignore[arg-type]
            pass  # pragma: no cover
    [(shards, options)] = captured
    assert shards == 7
    _assert_handed_on(options, given)
    assert options.on_leader_change is None


async def test_leader_elector_hands_every_option_of_the_config_on(
    seen: list[ElectionOptions[Any]],
) -> None:
    async def lead(leadership: te.Leadership) -> None:
        raise AssertionError("not reached")  # pragma: no cover

    given = {spec.name: _given()[spec.name] for spec in SPECS if spec.config}
    config = te.ElectionConfig(lock=te.MemoryLock(), callbacks=te.LeaderCallbacks(lead), **given)  # type: ignore[arg-type]
    with pytest.raises(_Opened):
        await te.LeaderElector(config).run()
    [options] = seen
    _assert_handed_on(options, given)
    assert options.on_leader_change is not None  # the elector's, feeding on_new_leader


def _flags() -> dict[str, Flag]:
    return {spec.name: spec.command for spec in SPECS if isinstance(spec.command, Flag)}


def _flag_value(spec: OptionSpec, flag: Flag) -> tuple[str, object]:
    """A command-line value for `flag` and the value it should become."""
    if flag.duration:
        seconds = {"lease_duration": 31.0, "renew_deadline": 21.0, "retry_period": 3.0}
        value = seconds.get(spec.name, 4.0)
        return f"{value:g}s", value
    return f"given-{spec.name}", f"given-{spec.name}"


class _Subcommands:
    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        kwargs.pop("help")
        self.parser = Parser(prog=name, **kwargs)
        return self.parser


def test_the_command_has_a_flag_for_every_option_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in SPECS:
        if isinstance(spec.command, Flag):
            monkeypatch.delenv(f"TRIO_ELECTION_{spec.command.env}", raising=False)
    subcommands = _Subcommands()
    _run.add_parser(subcommands)
    parser = subcommands.parser
    defaults = vars(parser.parse_args(["leases/team/app"]))
    for spec in SPECS:
        if isinstance(spec.command, Flag):
            assert defaults[spec.name] == spec.default, spec.name
            text, value = _flag_value(spec, spec.command)
            given = parser.parse_args(["leases/team/app", spec.command.name, text])
            assert getattr(given, spec.name) == value, spec.name
        else:
            # an option without a flag has none under its own name either
            assert spec.name not in defaults, spec.name
    assert set(_flags()) == {
        "identity",
        "events",
        "lease_duration",
        "renew_deadline",
        "retry_period",
    }


def test_the_command_hands_every_flag_on(
    seen: list[ElectionOptions[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n'
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: team}}]\n"
        "current-context: x\n"
    )

    def stop(lock: object, options: ElectionOptions[Any]) -> Any:
        seen.append(options)
        raise CommandError("seen", 42)

    monkeypatch.setattr(_election, "_open", stop)
    args = ["run", "leases/team/app", "--kubeconfig", str(kubeconfig)]
    wanted: dict[str, object] = {}
    for spec in SPECS:
        if isinstance(spec.command, Flag):
            text, value = _flag_value(spec, spec.command)
            args += [spec.command.name, text]
            wanted[spec.name] = value
    assert main(args) == 42
    [options] = seen
    for name, value in wanted.items():
        assert getattr(options, name) == value, name
    assert isinstance(options.client, KubeClient)
    assert options.stop_on_sigterm is False  # the runner's signals
    for spec in SPECS:
        if spec.name not in {*wanted, "client", "stop_on_sigterm"}:
            assert getattr(options, spec.name) == spec.default, spec.name


# The signatures written in the docs: ```python blocks of stubs, read with ast.


def _python_blocks(path: Path) -> list[ast.Module]:
    text = path.read_text(encoding="utf-8")
    return [ast.parse(block) for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL)]


def _documented(path: Path, name: str) -> ast.AsyncFunctionDef | ast.FunctionDef | ast.ClassDef:
    found = [
        node
        for module in _python_blocks(path)
        for node in module.body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef | ast.ClassDef)
        and node.name == name
    ]
    assert len(found) == 1, f"{path.name} documents {name} {len(found)} times"
    return found[0]


def _default(node: ast.expr | None) -> object:
    return inspect.Parameter.empty if node is None else ast.literal_eval(node)


def _annotation(node: ast.expr | None) -> object:
    return inspect.Parameter.empty if node is None else ast.unparse(node)


@pytest.mark.parametrize("name", ["elect", "open_election"])
def test_docs_api_md_shows_the_signatures_of_the_code(name: str) -> None:
    node = _documented(DOCS / "api.md", name)
    assert isinstance(node, ast.AsyncFunctionDef)
    args = node.args
    documented = [
        (a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, _default(None), _annotation(a.annotation))
        for a in args.args
    ] + [
        (a.arg, inspect.Parameter.KEYWORD_ONLY, _default(d), _annotation(a.annotation))
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    signature = inspect.signature(getattr(te, name))
    code = [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]
    assert documented == code
    assert _annotation(node.returns) == signature.return_annotation


def test_docs_sharding_md_shows_the_signature_of_open_shards() -> None:
    text = (DOCS / "sharding.md").read_text(encoding="utf-8")
    written = re.search(r"`(open_shards\(lock, \*,.*?\))`", text, re.DOTALL)
    assert written is not None, "docs/sharding.md does not write open_shards()'s signature"
    node = ast.parse(f"async def {' '.join(written[1].split())}: ...").body[0]
    assert isinstance(node, ast.AsyncFunctionDef)
    args = node.args
    documented = [(a.arg, _default(None)) for a in args.args] + [
        (a.arg, _default(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    code = [(p.name, p.default) for p in inspect.signature(te.open_shards).parameters.values()]
    assert documented == code


def test_docs_client_go_api_md_shows_the_fields_of_election_config() -> None:
    node = _documented(DOCS / "client-go-api.md", "ElectionConfig")
    assert isinstance(node, ast.ClassDef)
    documented = [
        (s.target.id, _annotation(s.annotation), _default(s.value))
        for s in node.body
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
    ]
    code = [
        (
            f.name,
            f.type,
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
        )
        for f in dataclasses.fields(te.ElectionConfig)
    ]
    assert documented == code


async def test_elect_calls_on_leader_change_with_each_holder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    holders: list[str | None] = []
    lock = te.MemoryLock()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lock.put_record(te.LeaderRecord("x", 15, now, now, 2))
    async with te.elect(lock, identity="a", on_leader_change=holders.append):
        assert holders == ["x", "a"]


def test_docs_api_md_lists_every_option_with_its_default() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    table = text[text.index("| option | default | meaning |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table, re.MULTILINE)
    assert [(name, ast.literal_eval(default)) for name, default in rows] == [
        (spec.name, spec.default) for spec in SPECS
    ]
