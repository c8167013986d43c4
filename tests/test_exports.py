"""The public face: everything in __all__ exists, is sorted, and private modules stay private."""

from __future__ import annotations

import trio_election as te


def test_all_is_sorted_and_complete() -> None:
    assert te.__all__ == sorted(te.__all__, key=lambda name: (not name.isupper(), name))
    for name in te.__all__:
        assert hasattr(te, name), name
    public = {name for name in vars(te) if not name.startswith("_")} - {"annotations"}
    # the only public attributes besides __all__ are submodules
    assert public - set(te.__all__) <= {"demo", "kube", "prometheus", "testing"}


def test_public_classes_name_their_home() -> None:
    for name in te.__all__:
        obj = getattr(te, name)
        module = getattr(obj, "__module__", "")
        if isinstance(obj, type):
            assert module.startswith("trio_election."), (name, module)


def test_version() -> None:
    assert te.__version__.count(".") == 2


def test_testing_is_sorted_and_names_its_home() -> None:
    import trio_election.testing as testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        obj = getattr(testing, name)
        # the core's tools keep their own module; the rest is at home in trio_election.testing
        if not obj.__module__.startswith("trio_election._core."):
            assert obj.__module__ == "trio_election.testing", (name, obj.__module__)
