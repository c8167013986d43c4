"""`trio_election.kube`: the client, its configuration and the API errors, under their
public path."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

import trio_election.kube as kube
from trio_election._kube._errors import error_from_response

NAMES = [
    "LEADER_ANNOTATION",
    "AlreadyExistsError",
    "ApiConnectionError",
    "ApiError",
    "ConflictError",
    "ExecConfig",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "KubeClient",
    "KubeConfig",
    "KubeConfigError",
    "NotFoundError",
    "ServerError",
    "TLSVerificationError",
    "TooManyRequestsError",
    "UnauthorizedError",
]

ERRORS = [name for name in NAMES if name.endswith("Error")]


def test_exactly_the_client_the_config_and_the_errors() -> None:
    assert kube.__all__ == NAMES  # sorted
    public = {name for name in vars(kube) if not name.startswith("_")} - {"annotations"}
    assert public == set(NAMES)


@pytest.mark.parametrize("name", [name for name in NAMES if not name.isupper()])
def test_each_name_says_it_is_public(name: str) -> None:
    obj = getattr(kube, name)
    assert obj.__module__ == "trio_election.kube"
    assert f"<class 'trio_election.kube.{name}'>" == repr(obj)


def test_the_public_path_shows_without_importing_it() -> None:
    # a lock's error may be the first a program sees of the package
    code = (
        "import sys; from trio_election._kube._errors import ForbiddenError;"
        "print(ForbiddenError.__module__, 'trio_election.kube' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["trio_election.kube", "False"]


def test_the_docstring_draws_every_error() -> None:
    assert kube.__doc__ is not None
    drawn = [line.split("── ")[1].split()[0] for line in kube.__doc__.splitlines() if "── " in line]
    assert sorted(drawn) == sorted([*ERRORS, "ConfigError"])


def test_the_drawn_tree_is_the_class_tree() -> None:
    assert kube.__doc__ is not None
    lines = [line for line in kube.__doc__.splitlines() if "── " in line]
    stack: list[tuple[int, str]] = [(-1, "ElectionError")]
    for line in lines:
        depth = line.index("── ")
        name = line.split("── ")[1].split()[0]
        while stack[-1][0] >= depth:
            stack.pop()
        cls = getattr(kube, name, None)
        if cls is not None:
            assert cls.__mro__[1].__name__ == stack[-1][1], name
        stack.append((depth, name))


def test_errors_pickle_and_repr() -> None:
    cases = [
        error_from_response(
            403,
            b'{"kind": "Status", "reason": "Forbidden", "message": "cannot watch resource '
            b'\\"leases\\" in API group \\"coordination.k8s.io\\""}',
            method="GET",
            path="/apis/coordination.k8s.io/v1/namespaces/ns/leases",
            params={"watch": "1"},
        ),
        error_from_response(429, b"", method="GET", path="/api/v1/pods", retry_after="2"),
        error_from_response(409, b"", method="POST", path="/api/v1/namespaces/ns/configmaps"),
        kube.ApiConnectionError("cannot talk to https://api.test: ConnectError: refused"),
        kube.TLSVerificationError("TLS verification of the API server failed"),
    ]
    for error in cases:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert repr(copy) == repr(error)
        assert vars(copy) == vars(error)
    forbidden = cases[0]
    assert isinstance(forbidden, kube.ForbiddenError)
    assert repr(forbidden).startswith("ForbiddenError('403 Forbidden: cannot watch")
    assert pickle.loads(pickle.dumps(cases[1])).retry_after == 2.0
