"""``mlship shadow report`` end to end: the prediction Lambda with a shadow answers real requests,
its capture lines land in S3 as Firehose writes them (gzip'd JSON Lines under the champion's hour
partition), late labels arrive, and the report (a real CLI process against a moto server)
matches a hand computation from the two models' own predictions."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from realtime.helpers import REPO, LambdaContext, rest_v1_event

BUCKET = "shadow-report"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        self.tables += tag == "table"


def _serve_with_shadow(handler: Any, monkeypatch: pytest.MonkeyPatch, shadow: Path, rows: list[dict[str, Any]],
                       per_request: int) -> tuple[list[str], list[str]]:
    """Capture lines of ``rows`` sent in requests of ``per_request`` rows, and the request ids."""
    monkeypatch.setenv("SHADOW_MODEL_URI", str(shadow))
    monkeypatch.setenv("SHADOW_BUDGET_MS", "5000")
    handler.reset()
    lines, ids = [], []
    for start in range(0, len(rows), per_request):
        out = io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        event = rest_v1_event(json.dumps({"instances": rows[start:start + per_request]}))
        event["requestContext"]["requestId"] = f"req-{start:05d}"  # API Gateway's inference id
        resp = handler.handler(event, LambdaContext())
        monkeypatch.setattr(sys, "stdout", sys.__stdout__)
        assert resp["statusCode"] == 200
        lines += [x for x in out.getvalue().splitlines() if x.startswith('{"capture"')]
        ids.append(json.loads(resp["body"])["request_id"])
    return lines, ids


def _deliver(s3: Any, lines: list[str]) -> None:
    """As Firehose writes them: one gzip'd JSON Lines object under the champion's hour partition."""
    now = datetime.now(UTC)
    key = f"inference-records/model=churn/version=1/date={now:%Y-%m-%d}/hour={now:%H}/capture-1.jsonl.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode()))


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlship", "shadow", "report", "--bucket", BUCKET, *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_the_report_matches_a_hand_computation_from_both_models(handler, monkeypatch, moto_env, churn_bundle,
                                                                 challenger_bundle, holdout_records, tmp_path):
    from mlship.runtime.predictor import Predictor

    rows = holdout_records * 4  # 200 rows, 40 requests of 5
    lines, ids = _serve_with_shadow(handler, monkeypatch, challenger_bundle, rows, per_request=5)
    s3 = boto3.client("s3", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    _deliver(s3, lines)
    champion, challenger = Predictor.load(churn_bundle).predict(rows), Predictor.load(challenger_bundle).predict(rows)
    truth = [int(i % 3 == 0) for i in range(len(rows))]  # any labels: both models are judged on the same ones
    labels = [{"request_id": ids[i // 5], "row": i % 5, "label": y} for i, y in enumerate(truth)]
    s3.put_object(Bucket=BUCKET, Key="labels/model=churn/part-0.jsonl",
                  Body="\n".join(json.dumps(x) for x in labels).encode())

    from mlship.registry.store import Registry

    s3.create_bucket(Bucket="shadow-registry")
    Registry("shadow-registry", sagemaker=False).register(challenger_bundle)
    done = _run(moto_env, "--model", "churn/1", "--out", str(tmp_path / "report"), "--slice", "contract",
                "--register", "churn/2", "--registry-bucket", "shadow-registry")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "shadow.json").read_text())
    agree = int(np.sum(champion.labels == challenger.labels))
    assert 0 < agree < 200  # the two models disagree on some rows: the count is not vacuous
    assert report["rows"]["joined"] == 200 and report["agreement"]["agree"] == agree
    assert report["agreement"]["lower"] <= agree / 200 <= report["agreement"]["upper"]
    delta = np.abs(champion.probabilities - challenger.probabilities).max(axis=1)
    assert report["delta"]["max"] == pytest.approx(float(delta.max()), abs=1e-6)
    assert report["delta"]["p50"] == pytest.approx(float(np.percentile(delta, 50)), abs=1e-6)
    assert report["shadow"]["model"] == {"name": "churn", "version": "2"} and report["errors"]["rate"] == 0.0
    assert set(report["by_slice"]["contract"]) == {r["contract"] for r in rows}
    lab = report["labelled"]
    y = np.asarray(truth)
    assert lab["rows"] == 200 and lab["primary"] == pytest.approx(float(np.mean(champion.labels == y)))
    assert lab["shadow"] == pytest.approx(float(np.mean(challenger.labels == y)))
    assert report["latency"]["requests"] == 40

    from mlship.evaluation.gate import SHADOW_DIR, ShadowLimits, shadow_checks
    from mlship.registry.attachments import latest_report

    attached = latest_report(Registry("shadow-registry", sagemaker=False), "churn", "2", SHADOW_DIR)
    assert attached["id"] == report["id"] and attached["model"] == {"name": "churn", "version": "2"}
    checks = shadow_checks(attached, ShadowLimits(min_agreement_lower=0.5, max_error_rate=0.0, min_rows=200))
    assert all(c.passed for c in checks), checks

    page = _Page()
    page.feed((tmp_path / "report" / "shadow.html").read_text())
    assert len(page.images) >= 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.tables >= 3


@pytest.mark.parametrize(("args", "named"), [
    (["--model", "churn/1"], "no inference records in the window"),
    (["--model", "churn"], "NAME/VERSION"),
    (["--endpoint", "ep"], "--shadow-variant"),
    (["--model", "churn/1", "--endpoint", "ep"], "not both"),
    (["--model", "churn/1", "--hours", "-1"], "--hours"),
    (["--model", "churn/1", "--until", "yesterday"], "ISO-8601"),
])
def test_bad_input_is_one_error_line_and_exit_2(moto_env, args, named, tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    done = _run(moto_env, *args, "--out", str(tmp_path), "--until", "2020-01-01T00:00:00Z") if "--until" not in args \
        else _run(moto_env, *args, "--out", str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert named in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:")
