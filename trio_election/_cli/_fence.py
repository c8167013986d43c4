"""`trio-election fence policy LOCK --resource R ...`: the apiserver refuses stale writes.

Prints a ValidatingAdmissionPolicy and its binding (YAML, for ``kubectl apply -f -``) whose
parameter is the lock's Lease. A create, update, patch or delete of an object of one of
the resources that carries the election's label (``trio-election.io/fence: <lock>``) is
refused unless the object is stamped (``leadership.fence.stamp()``) with the Lease's
current holder (``spec.holderIdentity``) and term (``spec.leaseTransitions``); a delete is
judged by the stamp of the object being deleted. When the Lease is missing every such
write is refused.

Only the writers' requests are judged: the service accounts of the lock's namespace, or the
users given with ``--writer``. Everyone else (people, other controllers, the garbage
collector) is exempt. Applying the policy needs an administrator; the leader needs no
extra rights.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from typing import TYPE_CHECKING, Any

import yaml

from .._core._fence import FENCE_LABEL, HOLDER_ANNOTATION, TERM_ANNOTATION, fence_label
from ._options import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._options import Subcommands

__all__ = ["add_parser", "fence_policy", "main"]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_RESOURCE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[a-z0-9]+)?(\.[a-z0-9][-a-z0-9.]*)?")


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "fence",
        help="print what makes the apiserver refuse a stale leader's writes",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    policy = actions.add_parser(
        "policy",
        help="print a ValidatingAdmissionPolicy and binding fencing LOCK's writers",
        description="Print a ValidatingAdmissionPolicy and its binding (YAML) that refuse "
        "writes of fenced objects unless they are stamped with the Lease's current holder "
        "and term.",
    )
    policy.add_argument(
        "lock",
        metavar="LOCK",
        help="the Lease the leader holds: leases/<namespace>/<name>",
    )
    policy.add_argument(
        "--resource",
        "-r",
        action="append",
        required=True,
        metavar="RESOURCE",
        help="a resource the leader writes, as its plural (configmaps: any API group), "
        "<plural>.<group> (deployments.apps) or with a subresource (deployments/status); "
        "repeat for each",
    )
    policy.add_argument(
        "--writer",
        action="append",
        default=[],
        metavar="USER",
        help="a user whose writes are judged (e.g. "
        "system:serviceaccount:<namespace>:<name>); repeat for each; default: every "
        "service account of the lock's namespace",
    )
    parser.set_defaults(handler=main)


def main(options: argparse.Namespace) -> int:
    documents = fence_policy(options.lock, options.resource, options.writer)
    given = [options.lock]
    given += [f"--resource {resource}" for resource in options.resource]
    given += [f"--writer {shlex.quote(writer)}" for writer in options.writer]
    print(f"# made by: trio-election fence policy {' '.join(given)}")
    print("# an administrator applies it: kubectl apply -f <this file>; docs/fencing.md")
    print(yaml.safe_dump_all(documents, sort_keys=False, width=4096), end="")
    return 0


def _lease(lock: str) -> tuple[str, str]:
    parts = lock.split("/")
    if len(parts) != 3 or parts[0] != "leases":
        raise UsageError(
            f"invalid LOCK {lock!r}: the apiserver can fence only with a Lease; give it as "
            "leases/<namespace>/<name>"
        )
    _, namespace, name = parts
    if not _DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        raise UsageError(f"invalid LOCK {lock!r}: {namespace!r} is not a namespace name")
    if not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise UsageError(f"invalid LOCK {lock!r}: {name!r} is not a Lease name")
    return namespace, name


def _rule(resource: str) -> dict[str, Any]:
    if not _RESOURCE.fullmatch(resource):
        raise UsageError(
            f"invalid --resource {resource!r}: give a plural resource name such as "
            "configmaps, deployments.apps or deployments/status"
        )
    plural, _, group = resource.partition(".")
    return {
        "apiGroups": [group] if group else ["*"],
        "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"],
        "resources": [plural],
    }


def _cel(text: str) -> str:
    """`text` as a CEL string literal."""
    return json.dumps(text)


def fence_policy(
    lock: str, resources: Sequence[str], writers: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding that fence `resources` with the Lease
    `lock` (``leases/<namespace>/<name>``). Raises `UsageError` naming a bad argument."""
    namespace, name = _lease(lock)
    if not resources:
        raise UsageError("no --resource given: name each resource the leader writes")
    label = fence_label(lock)
    policy_name = f"trio-election-fence.{label.lower()}"
    if writers:
        who = f"request.userInfo.username in [{', '.join(_cel(w) for w in writers)}]"
    else:
        who = f"request.userInfo.username.startsWith({_cel(f'system:serviceaccount:{namespace}:')})"

    def annotation(key: str) -> str:
        stamped = "variables.stamped.metadata"
        return (
            f"has({stamped}.annotations) && {_cel(key)} in {stamped}.annotations"
            f" ? {stamped}.annotations[{_cel(key)}] : ''"
        )

    missing = f" carries no {HOLDER_ANNOTATION} and {TERM_ANNOTATION} annotations: "
    unstamped = (
        f"{_cel(f'fenced by {lock}: ')} + (request.operation == 'DELETE' ? "
        f"'the object to delete' : 'the object') + "
        f"{_cel(missing + 'write it with leadership.fence.stamp(body)')}"
    )
    stale = (
        f"{_cel(f'fenced by {lock}: stale leader: ')} + "
        "(request.operation == 'DELETE' ? 'the object to delete is stamped' : "
        "'the write is stamped') + ' with term ' + variables.term + ' of ' + "
        "variables.holder + ', but the Lease is in term ' + string(variables.leaseTerm) + "
        "' held by ' + (variables.leaseHolder == '' ? 'nobody' : variables.leaseHolder) + "
        "(request.operation == 'DELETE' ? '; a leader stamps an object in its own term "
        "before deleting it' : '')"
    )
    policy: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name, "labels": {FENCE_LABEL: label}},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"},
            "matchConstraints": {"resourceRules": [_rule(r) for r in resources]},
            "matchConditions": [{"name": "fenced-writers", "expression": who}],
            "variables": [
                {
                    "name": "stamped",
                    "expression": "request.operation == 'DELETE' ? oldObject : object",
                },
                {"name": "holder", "expression": annotation(HOLDER_ANNOTATION)},
                {"name": "term", "expression": annotation(TERM_ANNOTATION)},
                {
                    "name": "leaseHolder",
                    "expression": "has(params.spec.holderIdentity) ? "
                    "params.spec.holderIdentity : ''",
                },
                {
                    "name": "leaseTerm",
                    "expression": "has(params.spec.leaseTransitions) ? "
                    "params.spec.leaseTransitions : 0",
                },
            ],
            "validations": [
                {
                    "expression": "variables.holder != '' && variables.term != ''",
                    "messageExpression": unstamped,
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.holder == '' || variables.term == '' || "
                    "(variables.holder == variables.leaseHolder && "
                    "variables.term == string(variables.leaseTerm))",
                    "messageExpression": stale,
                    "reason": "Forbidden",
                },
            ],
        },
    }
    binding: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name, "labels": {FENCE_LABEL: label}},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "paramRef": {
                "name": name,
                "namespace": namespace,
                "parameterNotFoundAction": "Deny",
            },
            "matchResources": {"objectSelector": {"matchLabels": {FENCE_LABEL: label}}},
        },
    }
    return [policy, binding]
