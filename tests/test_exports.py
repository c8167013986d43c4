"""The public face: what each public module exports, sorted, and shown under its public path."""

from __future__ import annotations

import pickle
import re
from typing import TYPE_CHECKING

import pytest

import trio_election as te
import trio_election.kube as kube
import trio_election.testing as testing

if TYPE_CHECKING:
    import types

PUBLIC_MODULES = [te, kube, testing]


def test_all_is_sorted_and_complete() -> None:
    assert te.__all__ == sorted(te.__all__, key=lambda name: (not name.isupper(), name))
    for name in te.__all__:
        assert hasattr(te, name), name
    public = {name for name in vars(te) if not name.startswith("_")} - {"annotations"}
    # the only public attributes besides __all__ are submodules
    assert public - set(te.__all__) <= {"demo", "kube", "prometheus", "testing"}


def test_the_top_level_is_the_election_api_the_errors_and_the_locks() -> None:
    # small enough to read at once: Kubernetes access is trio_election.kube, test tools
    # trio_election.testing
    assert len(te.__all__) <= 36
    assert not [name for name in te.__all__ if hasattr(kube, name)]
    assert not [name for name in te.__all__ if hasattr(testing, name)]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_public_names_show_their_public_home(module: types.ModuleType) -> None:
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == module.__name__, (name, obj.__module__)


def test_errors_pickle_under_their_public_path() -> None:
    lost = pickle.loads(pickle.dumps(te.LeadershipLost("gone")))
    assert type(lost) is te.LeadershipLost
    assert repr(te.LockConflict("x")).startswith("LockConflict(")
    assert str(te.LeadershipLost).startswith("<class 'trio_election.LeadershipLost'>")


def test_every_public_name_is_documented() -> None:
    """Each exported name appears in README.md or docs/ as code: in `backticks` or in a
    code block."""
    from pathlib import Path

    text = "\n".join(
        path.read_text() for path in [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
    )
    code = "\n".join(re.findall(r"```.*?```", text, flags=re.DOTALL))
    code += "\n".join(re.findall(r"`([^`\n]+)`", text))
    missing = [
        f"{module.__name__}.{name}"
        for module in PUBLIC_MODULES
        for name in module.__all__
        if name != "__version__" and not re.search(rf"\b{name}\b", code)
    ]
    assert missing == [], "not named in README.md or docs/"


def test_version() -> None:
    assert te.__version__.count(".") == 2


def test_testing_is_sorted() -> None:
    assert testing.__all__ == sorted(testing.__all__)
