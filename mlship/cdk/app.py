"""Putting the constructs in an app: settings from context, environments, tags and the review checks.

:func:`add_environment` is the composition this repository's ``infra/app.py`` deploys: one stack
per path (``<Prefix>-<env>-Foundation|Endpoint|Api|Monitoring|Batch|Edge|Retrain``), each holding
one construct under the id ``Default`` (CDK leaves ``Default`` out of logical ids, so the
resources keep the ids of the stacks they were first written as; the retraining pipeline was
always a construct, ``Retrain``). A user's app may instead put the constructs it wants in stacks of its own
(``mlship init`` writes one that does).
"""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

from mlship.cdk import nag
from mlship.cdk.batch import BatchScoring
from mlship.cdk.edge import EdgeFleet
from mlship.cdk.endpoint import ModelEndpoint
from mlship.cdk.monitor import ModelMonitor
from mlship.cdk.predict import PredictFunction
from mlship.cdk.props import (
    BatchScoringProps,
    EdgeFleetProps,
    ModelEndpointProps,
    ModelMonitorProps,
    ModelRegistryProps,
    PredictFunctionProps,
    RetrainingPipelineProps,
)
from mlship.cdk.registry import ModelRegistry
from mlship.config import MlshipConfig, load_config

CONTEXT_KEYS = ("mlship", "config")  # and every "mlship:<dotted.path>" override


def settings_from_context(scope: Construct, env: str | None = None, base_dir: Path | None = None) -> MlshipConfig:
    """The settings of environment ``env`` (default: the ``env`` context value, else ``dev``) from
    the app's context: ``cdk.json``'s ``mlship`` section, ``-c config=FILE`` and ``-c mlship:a.b=v``.

    Raises :class:`mlship.config.ConfigError` naming every problem.
    """
    name = env or scope.node.try_get_context("env") or "dev"
    context = {k: v for k, v in scope.node.get_all_context().items()
               if k in CONTEXT_KEYS or k.startswith("mlship:")}
    return load_config(str(name), context, base_dir=base_dir or Path.cwd())


def stack_environment(settings: MlshipConfig) -> cdk.Environment:
    """The account and region of ``settings`` (else the CLI's ``CDK_DEFAULT_*``; unset: environment-agnostic)."""
    return cdk.Environment(account=settings.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
                           region=settings.region or os.environ.get("CDK_DEFAULT_REGION"))


def apply_tags(scope: Construct, settings: MlshipConfig) -> None:
    """Tag everything under ``scope`` with project, environment and the configured tags."""
    for key, value in {"project": "mlship", "environment": settings.env, **settings.tags}.items():
        # KMS keys stay untagged: moto's CloudFormation fails on tagged AWS::KMS::Key (TagKey/Key
        # mismatch), which would break the local deploy rehearsal; the key has an alias instead.
        cdk.Tags.of(scope).add(key, value, exclude_resource_types=["AWS::KMS::Key"])


def enable_review(app: cdk.App) -> None:
    """cdk-nag's AwsSolutions checks on every synthesis, with mlship's documented wildcard
    acknowledgements; call it after every construct is added."""
    nag.enable(app)
    nag.acknowledge_wildcards(app)


def add_environment(app: cdk.App, cfg: MlshipConfig) -> dict[str, cdk.Stack]:
    """Add one environment's stacks to ``app``; return them by short name."""
    env = stack_environment(cfg)
    p = cfg.stack_prefix

    def stack(name: str, what: str) -> cdk.Stack:
        return cdk.Stack(app, f"{p}-{name}", env=env, description=f"mlship {cfg.env}: {what}")

    stacks: dict[str, cdk.Stack] = {"foundation": stack("Foundation", "KMS key, data bucket, alarm topic")}
    registry = ModelRegistry(stacks["foundation"], "Default", props=ModelRegistryProps(settings=cfg))
    endpoint = None
    if cfg.endpoint.enabled:
        stacks["endpoint"] = stack("Endpoint", "SageMaker endpoint (blue/green)")
        endpoint = ModelEndpoint(stacks["endpoint"], "Default", props=ModelEndpointProps(registry=registry))
    stacks["api"] = stack("Api", "predict Lambda, CodeDeploy alias shifting")
    PredictFunction(stacks["api"], "Default", props=PredictFunctionProps(registry=registry))
    stacks["monitoring"] = stack("Monitoring", "scheduled drift/quality monitor")
    ModelMonitor(stacks["monitoring"], "Default", props=ModelMonitorProps(registry=registry))
    if cfg.batch.enabled:
        stacks["batch"] = stack("Batch", "EMR Serverless batch scoring")
        BatchScoring(stacks["batch"], "Default", props=BatchScoringProps(registry=registry))
    if cfg.edge.enabled:
        stacks["edge"] = stack("Edge", "IoT devices and model rollout jobs")
        EdgeFleet(stacks["edge"], "Default", props=EdgeFleetProps(registry=registry))
    if cfg.retrain.enabled:  # imported only here: the image lookup loads the SageMaker SDK
        from mlship.cdk.retrain import RetrainingPipeline

        stacks["retrain"] = stack("Retrain", "retraining state machine started by drift events and a schedule")
        # "Retrain", not "Default": the logical ids this stack's resources were first deployed with
        RetrainingPipeline(stacks["retrain"], "Retrain", props=RetrainingPipelineProps(
            registry=registry, endpoint_role_arn=endpoint.role.role_arn if endpoint is not None else None))
        stacks["retrain"].add_stack_dependency(stacks["monitoring"])  # the monitor's bus and events
    for name, one in stacks.items():
        if name != "foundation":
            one.add_stack_dependency(stacks["foundation"])
        apply_tags(one, cfg)
    if "endpoint" in stacks and cfg.api.backend == "sagemaker":
        stacks["api"].add_stack_dependency(stacks["endpoint"])
    return stacks


def build_app(configs: list[MlshipConfig], app: cdk.App | None = None) -> cdk.App:
    """An app with the stacks of every config in ``configs`` and the review checks enabled."""
    app = app or cdk.App()
    for cfg in configs:
        add_environment(app, cfg)
    enable_review(app)
    return app
