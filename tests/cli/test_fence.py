"""`trio-election fence policy`: what it prints, and one line for bad input. That the policy
works is shown on the real apiserver (tests/control_plane/test_fencing.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from trio_election._cli import main


def policy(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["fence", "policy", *args]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def test_the_policy_names_the_lease_the_resources_and_the_label(
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy_doc, binding = policy(
        capsys, "leases/team/my-app", "-r", "configmaps", "-r", "deployments.apps"
    )
    assert policy_doc["kind"] == "ValidatingAdmissionPolicy"
    spec = policy_doc["spec"]
    assert spec["paramKind"] == {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
    assert spec["failurePolicy"] == "Fail"
    rules: list[dict[str, list[str]]] = spec["matchConstraints"]["resourceRules"]
    assert [(r["apiGroups"], r["resources"]) for r in rules] == [
        (["*"], ["configmaps"]),
        (["apps"], ["deployments"]),
    ]
    assert {op for r in rules for op in r["operations"]} == {"CREATE", "UPDATE", "DELETE"}
    assert spec["matchConditions"] == [
        {
            "name": "fenced-writers",
            "expression": 'request.userInfo.username.startsWith("system:serviceaccount:team:")',
        }
    ]
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    bspec = binding["spec"]
    assert bspec["paramRef"] == {
        "name": "my-app",
        "namespace": "team",
        "parameterNotFoundAction": "Deny",
    }
    assert bspec["matchResources"] == {
        "objectSelector": {"matchLabels": {"trio-election.io/fence": "leases.team.my-app"}}
    }
    assert bspec["validationActions"] == ["Deny"]


def test_writers_are_named_users(capsys: pytest.CaptureFixture[str]) -> None:
    policy_doc, _ = policy(
        capsys,
        "leases/team/my-app",
        "-r",
        "configmaps",
        "--writer",
        "system:serviceaccount:team:my-app",
        "--writer",
        'odd"name',
    )
    spec = policy_doc["spec"]
    assert spec["matchConditions"][0]["expression"] == (
        'request.userInfo.username in ["system:serviceaccount:team:my-app", "odd\\"name"]'
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["configmaps/team/x", "-r", "configmaps"],
            "invalid LOCK 'configmaps/team/x': the apiserver can fence only with a Lease; "
            "give it as leases/<namespace>/<name>",
        ),
        (["leases/x", "-r", "configmaps"], "invalid LOCK 'leases/x'"),
        (["leases/Team/x", "-r", "configmaps"], "'Team' is not a namespace name"),
        (["leases/team/x_y", "-r", "configmaps"], "'x_y' is not a Lease name"),
        (["leases/team/x", "-r", "Config Maps"], "invalid --resource 'Config Maps'"),
        (["leases/team/x"], "the following arguments are required: --resource/-r"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["fence", "policy", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("trio-election: error: ")
    assert message in lines[0]
