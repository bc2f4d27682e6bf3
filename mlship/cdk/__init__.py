"""mlship's CDK constructs (``pip install 'mlship[cdk]'``), for this repository's app and for yours.

Each construct takes typed props (:mod:`mlship.cdk.props`): the registry it stores in and the
settings section it owns::

    import aws_cdk as cdk
    from mlship import cdk as mlship_cdk

    app = cdk.App()
    settings = mlship_cdk.settings_from_context(app)          # cdk.json's "mlship" section, -c env=qa
    stack = cdk.Stack(app, f"{settings.stack_prefix}-Serving", env=mlship_cdk.stack_environment(settings))
    registry = mlship_cdk.ModelRegistry(stack, "Registry", props=mlship_cdk.ModelRegistryProps(settings=settings))
    mlship_cdk.PredictFunction(stack, "Predict", props=mlship_cdk.PredictFunctionProps(
        registry=registry, api={"memory_mb": 1024}))
    mlship_cdk.enable_review(app)                              # cdk-nag on every synthesis
    app.synth()

``mlship init DIR`` writes a project that starts from this.
"""

from __future__ import annotations

import importlib.util

from mlship.extras import MissingExtra

for _module in ("aws_cdk", "constructs", "cdk_nag"):
    if importlib.util.find_spec(_module) is None:
        raise MissingExtra(f"mlship.cdk needs the 'cdk' extra: pip install 'mlship[cdk]' ({_module} is not installed)",
                           name=_module)

from mlship.cdk.app import (  # noqa: E402
    add_environment,
    apply_tags,
    build_app,
    enable_review,
    settings_from_context,
    stack_environment,
)
from mlship.cdk.batch import BatchScoring  # noqa: E402
from mlship.cdk.edge import EdgeFleet  # noqa: E402
from mlship.cdk.endpoint import ModelEndpoint  # noqa: E402
from mlship.cdk.monitor import ModelMonitor  # noqa: E402
from mlship.cdk.predict import PredictFunction  # noqa: E402
from mlship.cdk.props import (  # noqa: E402
    BatchScoringProps,
    EdgeFleetProps,
    ImportedRegistry,
    ModelEndpointProps,
    ModelMonitorProps,
    ModelRegistryProps,
    PredictFunctionProps,
    RegistryRef,
    RetrainingPipelineProps,
)
from mlship.cdk.registry import ModelRegistry  # noqa: E402
from mlship.config import ConfigError, MlshipConfig, build_config  # noqa: E402
from mlship.errors import MlshipError  # noqa: E402


def __getattr__(name: str) -> object:
    if name == "RetrainingPipeline":  # its image lookup loads the SageMaker SDK (seconds): only when used
        from mlship.cdk.retrain import RetrainingPipeline

        return RetrainingPipeline
    raise AttributeError(f"module 'mlship.cdk' has no attribute {name!r}")


__all__ = [
    "BatchScoring", "BatchScoringProps", "ConfigError", "EdgeFleet", "EdgeFleetProps", "ImportedRegistry",
    "MlshipConfig", "MlshipError", "ModelEndpoint", "ModelEndpointProps", "ModelMonitor", "ModelMonitorProps",
    "ModelRegistry", "ModelRegistryProps", "PredictFunction", "PredictFunctionProps", "RegistryRef",
    "RetrainingPipeline", "RetrainingPipelineProps", "add_environment", "apply_tags", "build_app", "build_config",
    "enable_review", "settings_from_context", "stack_environment",
]
