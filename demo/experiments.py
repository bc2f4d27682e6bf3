"""Demo step: online experiments, a shadow deployment and an A/B test, each ending in a report.

Shadow: on the local control plane a new endpoint serves the champion; ``mlship rollout endpoint
--shadow churn/3`` adds v3 as a shadow variant (a copy of every request, answers captured, never
returned); a few hundred holdout rows are sent, the capture is flushed, and ``mlship shadow report``
joins the two variants' captured answers: v3's label agreement with the champion and its interval.

A/B: simulated traffic of the prediction Lambda split 50/50 between the champion and v3, sticky per
hashed user id (the Lambda's assignment), real predictions of both bundles on fresh rows, capture
lines with the serving variant, then late labels for most rows; ``mlship abtest analyze`` gives
the decision with its reasons. Both use the commands a user runs.
"""

from __future__ import annotations

import gzip
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from demo.context import DemoContext
from demo.release import IMAGE, ROLE, _mlship

ENDPOINT = "churn-shadow"
CHALLENGER = "3"
SHADOW_REQUESTS = 300
AB_USERS, AB_REQUESTS, AB_LABELLED = 4000, 8000, 0.9  # labels arrive late for 90 % of the rows
AB_PREFIX, AB_LABELS = "abtest/inference-records", "abtest/labels"  # apart from the monitoring step's
AB_SALT = "churn-v3-ab"


def _rows(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> null, numpy scalars -> Python)."""
    rows = frame.drop(columns=["churned"], errors="ignore").to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in row.items()} for row in rows]


def _champion(ctx: DemoContext) -> str:
    from mlship.registry.store import Registry

    record = Registry(ctx.bucket).get_alias("churn", "champion")
    assert record is not None, "no champion in the registry (the registry step did not run?)"
    return record.version


def run(ctx: DemoContext) -> None:
    ctx.step(f"Experiments: v{CHALLENGER} in shadow beside the champion, then an A/B test with late labels")
    _shadow(ctx)
    _abtest(ctx)


# ---------------------------------------------------------------------------------------- shadow
def _shadow(ctx: DemoContext) -> None:
    with ctx.control_plane("experiments-plane") as plane:
        _shadow_on_plane(ctx, plane)


def _rollout(ctx: DemoContext, *args: str) -> dict[str, Any]:
    done = _mlship(ctx, "rollout", "endpoint", "--endpoint", ENDPOINT, *args, "--poll", "0.2", "--json")
    doc = json.loads(done.stdout or "{}")
    assert done.returncode == 0 and doc.get("outcome") == "succeeded", f"rollout {args} failed: {doc}"
    return doc


def _capture_place(ctx: DemoContext) -> tuple[str, str]:
    """The shadow variant's name and the capture prefix, as the endpoint describes them."""
    from mlship.aws import clients as aws

    sm = aws.client("sagemaker")
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    variant = live["ShadowProductionVariants"][0]["VariantName"]
    config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    uri = config["DataCaptureConfig"]["DestinationS3Uri"]
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    assert bucket == ctx.bucket, f"capture goes to {uri}, not the demo bucket"
    return variant, prefix


def _send(ctx: DemoContext) -> dict[str, int]:
    """One holdout row per request, each with its inference id; the versions that answered."""
    from mlship.aws import clients as aws

    runtime, answered = aws.client("sagemaker-runtime"), {}
    for i, row in enumerate(_rows(ctx.data["holdout_df"].head(SHADOW_REQUESTS))):
        answer = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                         InferenceId=f"demo-shadow-{i}", Body=json.dumps({"instances": [row]}))
        version = str(json.loads(answer["Body"].read())["model"]["version"])
        answered[version] = answered.get(version, 0) + 1
    return answered


def _shadow_on_plane(ctx: DemoContext, plane: Any) -> None:
    con, champion = ctx.console, _champion(ctx)
    _rollout(ctx, "--model", "churn@champion", "--image", IMAGE, "--role", ROLE)
    con.print(f"{ENDPOINT} serves champion v{champion}")
    _rollout(ctx, "--shadow", f"churn/{CHALLENGER}")
    variant, prefix = _capture_place(ctx)
    con.print(f"v{CHALLENGER} is shadow variant {variant!r}; data capture -> s3://{ctx.bucket}/{prefix}/")
    answered = _send(ctx)
    assert answered == {champion: SHADOW_REQUESTS}, f"the client saw answers {answered}, not only the champion's"
    con.print(f"sent {SHADOW_REQUESTS} holdout rows: every answer came from v{champion} (the shadow's never "
              "reach the client)")
    service = next(s for s in plane.services if type(s).__name__ == "SageMakerService")
    service.flush_capture()  # the plane writes capture every 5 s; a user waits for it, the demo flushes
    out = ctx.workdir / "shadow"
    done = _mlship(ctx, "shadow", "report", "--bucket", ctx.bucket, "--endpoint", ENDPOINT,
                   "--shadow-variant", variant, "--prefix", prefix, "--out", str(out))
    con.print(done.stdout.rstrip(), highlight=False)
    assert done.returncode == 0, f"mlship shadow report exited {done.returncode}"
    report = json.loads((out / "shadow.json").read_text())
    agreement = report["agreement"]
    assert agreement["rows"] == SHADOW_REQUESTS, f"the report joined {agreement['rows']} rows"
    con.print(f"[bold green]v{CHALLENGER} agrees with the champion on {agreement['rate']:.1%} of "
              f"{agreement['rows']} rows[/] [{agreement['lower']:.1%}, {agreement['upper']:.1%}] "
              f"({agreement['confidence']:.0%} interval); report: {out / 'shadow.html'}")
    ctx.data["shadow_report"] = out / "shadow.html"


# ---------------------------------------------------------------------------------------- A/B test
def _traffic(ctx: DemoContext, control: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Capture lines per variant and the late labels of simulated sticky 50/50 traffic."""
    import numpy as np

    from mlship.local.datasets import CHURN_LABEL, make_churn
    from mlship.runtime.assignment import assign
    from mlship.runtime.predictor import Predictor
    from mlship.runtime.records import capture_line, make_records

    rng = np.random.default_rng(2027)
    fresh = make_churn(AB_REQUESTS, seed=2027)  # rows no model has seen
    users = [f"user-{u:05d}" for u in rng.integers(AB_USERS, size=AB_REQUESTS)]
    weights = [(control, 0.5), (CHALLENGER, 0.5)]
    arm = np.array([assign(user, weights, AB_SALT) for user in users])
    start = datetime.now(UTC) - timedelta(hours=6)
    lines: dict[str, list[str]] = {}
    labels = []
    for version in (control, CHALLENGER):
        index = np.flatnonzero(arm == version)
        rows = _rows(fresh.iloc[index])
        predictor = Predictor.load(f"mlship://churn/{version}", public_key=ctx.data["public_key"])
        outputs = predictor.predict(rows).records()  # the whole arm at once; one request per row below
        for i, row, output in zip(index.tolist(), rows, outputs, strict=True):
            request_id = uuid.uuid4().hex
            ts = start + timedelta(seconds=i * 4)
            records = make_records(request_id, "churn", version, [{**row, "user_id": users[i]}], [output],
                                   source="lambda", ts=ts)
            lines.setdefault(version, []).append(capture_line(records, variant=version, alias="live"))
            if rng.random() < AB_LABELLED:
                labels.append({"request_id": request_id, "row": 0, "label": int(fresh[CHURN_LABEL].iat[i])})
    return lines, labels


def _write(ctx: DemoContext, lines: dict[str, list[str]], labels: list[dict[str, Any]]) -> None:
    from mlship.aws import clients as aws
    from mlship.runtime.records import object_key, utc_now

    s3 = aws.client("s3")
    for version, batch in lines.items():
        body = gzip.compress("".join(line + "\n" for line in batch).encode())
        s3.put_object(Bucket=ctx.bucket, Key=object_key(AB_PREFIX, "churn", version, utc_now()), Body=body)
    s3.put_object(Bucket=ctx.bucket, Key=f"{AB_LABELS}/model=churn/late-0.jsonl",
                  Body="\n".join(json.dumps(x) for x in labels).encode())


def _abtest(ctx: DemoContext) -> None:
    con, control = ctx.console, _champion(ctx)
    lines, labels = _traffic(ctx, control)
    _write(ctx, lines, labels)
    con.print(f"simulated A/B traffic: {AB_REQUESTS} requests from {AB_USERS} users, sticky 50/50 by hashed "
              f"user id (v{control}: {len(lines[control])} requests, v{CHALLENGER}: {len(lines[CHALLENGER])}), "
              f"captured to s3://{ctx.bucket}/{AB_PREFIX}/; late labels for {len(labels)} rows")
    out = ctx.workdir / "abtest"
    done = _mlship(ctx, "abtest", "analyze", "--bucket", ctx.bucket, "--prefix", AB_PREFIX, "--labels-prefix",
                   AB_LABELS, "--model", "churn", "--control", control, "--treatment", CHALLENGER,
                   "--unit-field", "user_id", "--metric", "continuous", "--mde", "0.05", "--out", str(out))
    con.print(done.stdout.rstrip(), highlight=False)
    assert done.returncode == 0, f"mlship abtest analyze exited {done.returncode}"
    doc = json.loads((out / "abtest.json").read_text())
    assert doc["decision"] in {"ship", "keep"}, f"no decision: {doc['decision']} ({doc['reasons']})"
    verdict = f"ship v{CHALLENGER}" if doc["decision"] == "ship" else f"keep champion v{control}"
    con.print(f"[bold green]A/B decision: {doc['decision']}[/] ({verdict}), because:")
    for reason in doc["reasons"]:
        con.print(f"  - {reason}", highlight=False)
    con.print(f"A/B report: {out / 'abtest.html'}")
    ctx.data["abtest_report"] = out / "abtest.html"
