"""Releases: taking a registered version to live traffic and deciding how it ended.

``policy`` holds the deployment settings checked against SageMaker's and CodeDeploy's limits;
``outcome`` decides a rollout's verdict from what the service reports (never from a waiter);
``endpoint`` drives a SageMaker blue/green update and follows it to the end.
"""
