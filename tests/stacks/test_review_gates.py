"""Security-review gates: cdk-nag (AwsSolutions, 3.x Validations API) and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlship.cdk.nag import wildcard_findings

ACK_KEY = "aws:cdk:acknowledged-rules"


def _acknowledgements(synth) -> list[tuple[str, str, str]]:
    rows = []
    for metadata in synth.metadata.values():
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] == ACK_KEY:
                    rows += [(path, rule, reason) for rule, reason in entry["data"].items()]
    return rows


def test_aws_solutions_pack_has_no_unacknowledged_findings(synth):
    # The fixture's synthesis raises on any unacknowledged finding; the report (if written) agrees.
    report = synth.outdir / "validation-report.json"
    if report.is_file():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            assert plugin["conclusion"] == "success", plugin["violations"]


def test_every_acknowledgement_carries_a_specific_reason(synth):
    acks = _acknowledgements(synth)
    rules = {rule.removeprefix("Annotation::").split("[")[0] for _, rule, _ in acks}
    assert "AwsSolutions-IAM5" in rules and "AwsSolutions-S1" in rules
    allowed = {"AwsSolutions-IAM5", "AwsSolutions-IAM4", "AwsSolutions-L1", "AwsSolutions-S1",
               "AwsSolutions-COG4", "AwsSolutions-APIG3"}
    assert rules <= allowed, f"new kinds of acknowledgement need review: {rules - allowed}"
    for path, rule, reason in acks:
        assert len(reason) >= 40, (path, rule, reason)
        if "IAM5[Resource::*]" in rule:
            assert "no resource-level permissions" in reason
        if "IAM5[Action::" in rule:
            pytest.fail(f"wildcard action acknowledged at {path}: {rule}")
    # One reason per distinct rule text is fine; a copy-pasted reason across unrelated rules is not.
    by_reason: dict[str, set[str]] = {}
    for _, rule, reason in acks:
        by_reason.setdefault(reason, set()).add(rule.removeprefix("Annotation::").split("[")[0])
    assert all(len(r) == 1 for r in by_reason.values()), by_reason


def test_wildcard_findings_explain_only_known_patterns():
    bucket = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::mlship-dev-data-",
                                {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}, "/inference-records/*"]]}
    doc = {"Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": bucket},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": {"Fn::GetAtt": ["Other", "Arn"]}},
    ]}
    found = dict(wildcard_findings(doc))
    assert found["Resource::arn:<AWS::Partition>:s3:::mlship-dev-data-<AWS::AccountId>-<AWS::Region>/"
                 "inference-records/*"].startswith("object-level access limited to the inference-records/ prefix")
    assert "no resource-level permissions" in found["Resource::*"]
    assert found["Action::s3:Get*"] is None
    # One unexplained statement on "*" leaves the whole Resource::* finding unacknowledged.
    doc["Statement"].append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    assert dict(wildcard_findings(doc))["Resource::*"] is None


def test_nag_fails_synthesis_on_an_unexplained_wildcard(tmp_path):
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam

    from mlship.cdk import nag

    app = cdk.App(outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "Bad")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    nag.enable(app)
    rows = nag.acknowledge_wildcards(app)
    assert [(finding, reason) for _, finding, reason in rows] == [("Resource::*", None)]
    with pytest.raises(RuntimeError, match=r"AwsSolutions-IAM5\[Resource::\*\]"):
        app.synth()


def test_cfn_lint_reports_no_errors_on_any_template(synth):
    templates = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    assert len(templates) == 17  # dev: 6 stacks; prod: 7 (with Retrain); staging: 4 (no batch, no edge)
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run([str(cfn_lint), "--format", "json", *templates],
                          capture_output=True, text=True, timeout=300)
    matches = json.loads(proc.stdout or "[]")
    errors = [m for m in matches if m["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)[:4000]
    assert proc.returncode in (0, 4, 8, 12), proc.stderr[-2000:]  # 4/8: warnings/informational only


def test_serving_image_asset_stages_no_heavy_directories(tmp_path, monkeypatch):
    """The Dockerfile asset's context excludes .venv, node_modules, cdk.out, build and .git."""
    import aws_cdk as cdk

    from mlship.cdk import assets

    repo = tmp_path / "repo"
    (repo / "mlship").mkdir(parents=True)
    (repo / "mlship" / "serve.py").write_text("print('serve')\n")
    (repo / "Dockerfile").write_text("FROM public.ecr.aws/docker/library/python:3.12-slim\nCOPY mlship /app/mlship\n")
    for heavy in (".venv/lib", "node_modules/aws-cdk", "cdk.out/asset.x", "build/lambda", ".git/objects",
                  "mlship/__pycache__"):
        (repo / heavy).mkdir(parents=True)
        (repo / heavy / "big.bin").write_bytes(b"x" * 1024)
    monkeypatch.setattr("mlship.deploy.serving_image.checkout_root", lambda: repo)  # the context is the checkout
    app = cdk.App(outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "Image")
    uri, asset = assets.serving_image(stack, None)
    assert asset is not None and "container-assets" in stack.resolve(uri)["Fn::Sub"]
    app.synth()
    staged = next((tmp_path / "out").glob("asset.*"))
    names = {p.relative_to(staged).as_posix() for p in staged.rglob("*")}
    assert {"Dockerfile", "mlship", "mlship/serve.py"} <= names
    assert not any(n.split("/")[0] in {".venv", "node_modules", "cdk.out", "build", ".git"} for n in names), names
    assert "mlship/__pycache__" not in names
    # With an image URI no asset (and no Docker) is involved.
    assert assets.serving_image(stack, "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1") == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", None)
