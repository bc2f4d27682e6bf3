"""The mlship CDK app: ``cdk synth|deploy -c env=dev|staging|prod|<declared>`` (wired in cdk.json).

It composes the constructs of :mod:`mlship.cdk` as :func:`mlship.cdk.add_environment` does, one
stack per path (``Mlship-<env>-*``): Foundation (ModelRegistry: KMS key, data + access-log buckets,
alarm topic), Endpoint (ModelEndpoint: SageMaker blue/green), Api (PredictFunction: Lambda +
CodeDeploy + URL/API), Monitoring (ModelMonitor), Batch (BatchScoring: EMR Serverless +
Scheduler), Edge (EdgeFleet: IoT), Retrain (RetrainingPipeline, ``retrain.enabled``).
cdk-nag's AwsSolutions pack runs on every synthesis.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python infra/app.py` by the CDK CLI
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk  # noqa: E402

from mlship.cdk import build_app, settings_from_context  # noqa: E402
from mlship.errors import MlshipError  # noqa: E402


def main() -> None:
    """Entry point of the CDK CLI (``.venv/bin/python infra/app.py``)."""
    app = cdk.App()
    try:  # the constructs validate their props too (e.g. a schedule without its environment)
        build_app([settings_from_context(app)], app)
    except MlshipError as exc:  # a ConfigError, or a worker archive that could not be built
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()
