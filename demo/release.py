"""Demo step: the release loop, rehearsed on the local control plane.

The champion (v1) goes live on a new endpoint; the challenger (v2) is canaried to completion while
a client invokes the endpoint without pause (champion moves to v2, no failed request); then v3 is
rolled out with injected errors on its green fleet: the 5XX alarm fires, traffic returns to v2, the
driver reports ``rolled_back`` naming the alarm, and champion stays v2. Waits are scaled by 0.01
(a 300 s canary bake takes 3 s). The commands are the ones a user runs against AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from demo.context import DemoContext

ENDPOINT = "churn-release"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-serve:1"
ROLE = "arn:aws:iam::123456789012:role/mlship-sagemaker"
CANARY = ["--strategy", "canary", "--size", "20", "--wait", "300", "--termination-wait", "120"]


class Traffic:
    """A client invoking the endpoint from a thread: answers per version, failures."""

    def __init__(self, row: dict[str, Any]):
        from mlship.aws import clients as aws

        self.runtime, self.row = aws.client("sagemaker-runtime"), row
        self.versions: dict[str, int] = {}
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                                      Body=json.dumps({"instances": [self.row]}))
                version = str(json.loads(answer["Body"].read())["model"]["version"])
                self.versions[version] = self.versions.get(version, 0) + 1
            except Exception:  # noqa: BLE001 - the demo counts every failed request, whatever it is
                self.failures += 1
            time.sleep(0.005)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)


def _mlship(ctx: DemoContext, *args: str) -> subprocess.CompletedProcess:
    """One ``mlship`` command as a user runs it (its progress display goes to the terminal)."""
    ctx.console.print(f"[bold]$ mlship {' '.join(args)}", highlight=False)
    done = subprocess.run([sys.executable, "-m", "mlship", *args], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "COLUMNS": str(ctx.console.width)}, timeout=600)
    return done


def _rollout(ctx: DemoContext, model: str, *extra: str) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    done = _mlship(ctx, "rollout", "endpoint", "--endpoint", ENDPOINT, "--model", model, "--image", IMAGE,
                   "--role", ROLE, "--poll", "0.2", *extra, "--json")
    elapsed = time.perf_counter() - started
    return done.returncode, json.loads(done.stdout or "{}"), elapsed


def _champion(ctx: DemoContext) -> str:
    from mlship.registry.store import Registry

    record = Registry(ctx.bucket).get_alias("churn", "champion")
    return record.version if record else "unset"


def _row(ctx: DemoContext) -> dict[str, Any]:
    import math

    frame = ctx.data["holdout_df"].drop(columns=["churned"], errors="ignore").head(1)
    row = frame.to_dict(orient="records")[0]
    return {k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in row.items()}


def run(ctx: DemoContext) -> None:
    ctx.step("Release: canary v2 to completion, then v3 with injected errors rolled back (local control plane)")
    with ctx.control_plane("release-plane"):
        _rehearse(ctx)


def _rehearse(ctx: DemoContext) -> None:
    con = ctx.console
    code, _, _ = _rollout(ctx, "churn@champion")
    assert code == 0, "creating the endpoint with the champion failed"
    con.print(f"{ENDPOINT} serves champion v{_champion(ctx)}")
    with Traffic(_row(ctx)) as traffic:
        code, doc, seconds = _rollout(ctx, "churn@challenger", *CANARY)
    assert code == 0 and doc["outcome"] == "succeeded", f"the v2 canary did not succeed: {doc}"
    assert traffic.failures == 0, f"{traffic.failures} requests failed during a successful rollout"
    con.print(f"[green]v2 canary succeeded in {seconds:.1f} s[/]: {len(doc['phases'])} phases; the client saw "
              f"answers {traffic.versions} and 0 failed requests; champion is now v{_champion(ctx)}")
    with Traffic(_row(ctx)) as traffic:
        code, doc, seconds = _rollout(ctx, "churn/3", *CANARY, "--fault", "errors=0.5")
    assert code == 1 and doc["outcome"] == "rolled_back" and doc["alarm"], f"v3 was not rolled back: {doc}"
    assert _champion(ctx) == "2", "champion moved although the rollout failed"
    con.print(f"[yellow]v3 rolled back after {seconds:.1f} s[/]: alarm {doc['alarm']} fired "
              f"({traffic.failures} injected errors reached the client during the canary); exit code 1; "
              f"champion stays v{_champion(ctx)}")
    history = _mlship(ctx, "alias", "history", "churn", "champion", "--bucket", ctx.bucket)
    con.print(history.stdout.rstrip(), highlight=False)
