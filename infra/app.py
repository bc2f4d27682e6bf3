"""The mlship CDK app: ``cdk synth|deploy -c env=dev|staging|prod`` (wired in cdk.json).

Stacks per environment (``Mlship-<env>-*``): Foundation (KMS key, data + access-log buckets,
alarm topic), Endpoint (SageMaker blue/green), Api (predict Lambda + CodeDeploy + URL/API),
Monitoring (monitor Lambda on a schedule), Batch (EMR Serverless + Scheduler), Edge (IoT),
Retrain (``retrain.enabled``: the monitor's events start a Step Functions retraining run).
cdk-nag's AwsSolutions pack runs on every synthesis.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python infra/app.py` by the CDK CLI
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk  # noqa: E402

from infra import nag  # noqa: E402
from infra.config import ConfigError, MlshipConfig, load_config  # noqa: E402
from infra.stacks.api_stack import ApiStack  # noqa: E402
from infra.stacks.batch_stack import BatchStack  # noqa: E402
from infra.stacks.edge_stack import EdgeStack  # noqa: E402
from infra.stacks.endpoint_stack import EndpointStack  # noqa: E402
from infra.stacks.foundation_stack import FoundationStack  # noqa: E402


def add_environment(app: cdk.App, cfg: MlshipConfig) -> dict[str, cdk.Stack]:
    """Add one environment's stacks to ``app``; return them by short name."""
    env = cdk.Environment(account=cfg.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
                          region=cfg.region or os.environ.get("CDK_DEFAULT_REGION"))
    p = cfg.stack_prefix
    foundation = FoundationStack(app, f"{p}-Foundation", cfg=cfg, env=env,
                                 description=f"mlship {cfg.env}: KMS key, data bucket, alarm topic")
    key_arn = foundation.key.key_arn
    stacks: dict[str, cdk.Stack] = {"foundation": foundation}
    if cfg.endpoint.enabled:
        stacks["endpoint"] = EndpointStack(app, f"{p}-Endpoint", cfg=cfg, key_arn=key_arn, env=env,
                                           description=f"mlship {cfg.env}: SageMaker endpoint (blue/green)")
    stacks["api"] = ApiStack(app, f"{p}-Api", cfg=cfg, key_arn=key_arn, env=env,
                             description=f"mlship {cfg.env}: predict Lambda, CodeDeploy alias shifting")
    from infra.stacks.monitoring_stack import MonitoringStack

    stacks["monitoring"] = MonitoringStack(app, f"{p}-Monitoring", cfg=cfg, key_arn=key_arn, env=env,
                                           description=f"mlship {cfg.env}: scheduled drift/quality monitor")
    if cfg.batch.enabled:
        stacks["batch"] = BatchStack(app, f"{p}-Batch", cfg=cfg, key_arn=key_arn, env=env,
                                     description=f"mlship {cfg.env}: EMR Serverless batch scoring")
    if cfg.edge.enabled:
        stacks["edge"] = EdgeStack(app, f"{p}-Edge", cfg=cfg, key_arn=key_arn, env=env,
                                   description=f"mlship {cfg.env}: IoT devices and model rollout jobs")
    if cfg.retrain.enabled:  # imported only here: the image lookup loads the SageMaker SDK
        from infra.stacks.retrain_stack import RetrainStack

        endpoint = stacks.get("endpoint")
        stacks["retrain"] = RetrainStack(
            app, f"{p}-Retrain", cfg=cfg, key_arn=key_arn, env=env,
            endpoint_role_arn=endpoint.role.role_arn if isinstance(endpoint, EndpointStack) else None,
            description=f"mlship {cfg.env}: retraining state machine started by drift events and a schedule")
        stacks["retrain"].add_stack_dependency(stacks["monitoring"])  # the monitor's bus and events
    for name, stack in stacks.items():
        if name != "foundation":
            stack.add_stack_dependency(foundation)
        for key, value in {"project": "mlship", "environment": cfg.env, **cfg.tags}.items():
            # KMS keys stay untagged: moto's CloudFormation fails on tagged AWS::KMS::Key (TagKey/Key
            # mismatch), which would break the local deploy rehearsal; the key has an alias instead.
            cdk.Tags.of(stack).add(key, value, exclude_resource_types=["AWS::KMS::Key"])
    if "endpoint" in stacks and cfg.api.backend == "sagemaker":
        stacks["api"].add_stack_dependency(stacks["endpoint"])
    return stacks


def cdk_json_context() -> dict[str, object]:
    """The context of ``cdk.json`` (feature flags and the mlship section) for apps built in Python."""
    import json

    return dict(json.loads((Path(__file__).resolve().parent.parent / "cdk.json").read_text())["context"])


def build_app(configs: list[MlshipConfig], app: cdk.App | None = None) -> cdk.App:
    """An app with the stacks of every config in ``configs`` and cdk-nag enabled."""
    app = app or cdk.App()
    for cfg in configs:
        add_environment(app, cfg)
    nag.enable(app)
    nag.acknowledge_wildcards(app)
    return app


def main() -> None:
    """Entry point of the CDK CLI (``.venv/bin/python infra/app.py``)."""
    app = cdk.App()
    env = app.node.try_get_context("env") or "dev"
    context = {k: v for k, v in app.node.get_all_context().items()
               if k in ("mlship", "config") or k.startswith("mlship:")}
    try:
        cfg = load_config(str(env), context, base_dir=Path.cwd())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    build_app([cfg], app)
    app.synth()


if __name__ == "__main__":
    main()
