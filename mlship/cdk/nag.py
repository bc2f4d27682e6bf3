"""cdk-nag (3.x ``Validations`` API) for the mlship app, with reasoned acknowledgements.

Every acknowledgement carries a specific reason. Wildcard IAM findings (AwsSolutions-IAM5) are
acknowledged by :func:`acknowledge_wildcards` only when they match :data:`WILDCARD_RULES` (object
keys under a named prefix of the mlship bucket, a function's own log streams, actions that have
no resource-level permissions); any other wildcard stays unacknowledged and fails synthesis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# Actions whose IAM authorization has no resource-level permissions (Resource must be "*").
NO_RESOURCE_LEVEL_ACTIONS = {
    "cloudwatch:PutMetricData": "cloudwatch:PutMetricData supports no resource-level permissions; "
                                "it is limited to the mlship namespace by a cloudwatch:namespace condition",
    "xray:PutTraceSegments": "X-Ray PutTraceSegments supports no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray PutTelemetryRecords supports no resource-level permissions",
    "ecr:GetAuthorizationToken": "ecr:GetAuthorizationToken supports no resource-level permissions; "
                                 "image pulls are scoped to the serving repository",
}

# (regex on the flattened resource, reason). Flattening follows cdk-nag: Ref X -> <X>,
# Fn::GetAtt X.Y -> <X.Y>, Fn::Join concatenated.
WILDCARD_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^arn:<AWS::Partition>:s3:::[a-z0-9.-]+<AWS::AccountId>-<AWS::Region>/"
                r"(?P<prefix>[a-z0-9-]+/(?:[a-z0-9=-]+/)*)\*$"),
     "object-level access limited to the {prefix} prefix of the mlship bucket (keys are per model/date)"),
    (re.compile(r"^arn:<AWS::Partition>:s3:::[a-z0-9.-]+<AWS::AccountId>-<AWS::Region>/\*$"),
     "read-only object access to the mlship bucket: bundles resolved through the registry "
     "(mlship://NAME@ALIAS) can live under any registry prefix"),
    (re.compile(r"^arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
                r"(?P<group>/aws/[A-Za-z0-9/_.-]+):\*$"),
     "log streams of the function's own log group {group} (stream names are generated)"),
    (re.compile(r"^arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
                r"/aws/sagemaker/Endpoints/(?P<ep>[a-z0-9-]+):\*$"),
     "log streams of the endpoint's own log group /aws/sagemaker/Endpoints/{ep}"),
]


def enable(app: cdk.App) -> None:
    """Run the AwsSolutions pack at synthesis; any unacknowledged finding fails ``cdk synth``."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one AwsSolutions rule (e.g. ``AwsSolutions-S1``) on ``scope`` and its children."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule} needs a specific reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def flatten(ref: Any) -> str:
    """A CloudFormation value flattened the way cdk-nag names IAM5 findings."""
    if ref is None:
        return ""
    if isinstance(ref, str):
        return ref.replace("${", "<").replace("}", ">")
    if isinstance(ref, dict):
        if "Fn::Join" in ref:
            delim, items = ref["Fn::Join"]
            return delim.join(flatten(i) for i in items)
        if "Fn::Sub" in ref:
            return flatten(ref["Fn::Sub"])
        if "Fn::GetAtt" in ref:
            res, attr = ref["Fn::GetAtt"]
            return f"<{flatten(res)}.{flatten(attr)}>"
        if "Fn::ImportValue" in ref:
            return flatten(ref["Fn::ImportValue"])
        if "Ref" in ref:
            return f"<{flatten(ref['Ref'])}>"
    return json.dumps(ref, separators=(",", ":"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_findings(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(finding, reason or None)`` for every wildcard in an IAM policy document.

    A finding is acknowledgeable only if every statement producing it is covered by a rule
    (one unexplained ``Resource::*`` statement leaves the whole finding unacknowledged).
    """
    reasons: dict[str, list[str | None]] = {}
    for stmt in document.get("Statement", []):
        if stmt.get("Effect") != "Allow":
            continue
        actions = [a for a in _as_list(stmt.get("Action", [])) if isinstance(a, str)]
        for action in actions:
            if "*" in action:
                reasons.setdefault(f"Action::{action}", []).append(None)
        for resource in _as_list(stmt.get("Resource", [])):
            flat = flatten(resource)
            if "*" not in flat:
                continue
            reason = None
            if flat == "*":
                if actions and all(a in NO_RESOURCE_LEVEL_ACTIONS for a in actions):
                    reason = "; ".join(NO_RESOURCE_LEVEL_ACTIONS[a] for a in actions)
            else:
                for pattern, template in WILDCARD_RULES:
                    match = pattern.match(flat)
                    if match:
                        reason = template.format(**match.groupdict())
                        break
            reasons.setdefault(f"Resource::{flat}", []).append(reason)
    out: list[tuple[str, str | None]] = []
    for finding, found in reasons.items():
        if any(r is None for r in found):
            out.append((finding, None))
        else:
            out.append((finding, "; ".join(dict.fromkeys(r for r in found if r))))
    return out


def _policy_documents(node: IConstruct) -> Iterable[dict[str, Any]]:
    if isinstance(node, (iam.CfnPolicy, iam.CfnManagedPolicy)):
        yield cdk.Stack.of(node).resolve(node.policy_document)
    elif isinstance(node, iam.CfnRole) and node.policies:
        for policy in cdk.Stack.of(node).resolve(node.policies) or []:
            yield policy.get("policyDocument") or policy.get("PolicyDocument") or {}


def acknowledge_wildcards(app: cdk.App) -> list[tuple[str, str, str | None]]:
    """Acknowledge the IAM5 findings that match :data:`WILDCARD_RULES`; return all findings.

    Call after every stack is built. Returns ``(construct path, finding, reason)`` rows;
    rows with reason None are left unacknowledged (synthesis then fails on them).
    """
    rows: list[tuple[str, str, str | None]] = []
    for node in app.node.find_all():
        for document in _policy_documents(node):
            for finding, reason in wildcard_findings(document):
                rows.append((node.node.path, finding, reason))
                if reason:
                    cdk.Validations.of(node).acknowledge(
                        cdk.Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))
    return rows
