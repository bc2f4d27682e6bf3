"""Releases: taking a registered version to live traffic and deciding how it ended.

``policy`` holds the deployment settings checked against SageMaker's and CodeDeploy's limits;
``outcome`` decides a rollout's verdict from what the service reports (never from a waiter);
``models`` resolves ``--model`` to one concrete version and checks its bundle; ``alarms`` creates
the default rollback alarms; ``endpoint`` drives a SageMaker blue/green update and
``endpoint_release`` checks, starts and follows one; ``function`` does the same for a Lambda alias
with CodeDeploy; ``settle`` records the outcome in the registry and, on success only, moves
``champion`` and writes the deployed-model parameters.
"""
