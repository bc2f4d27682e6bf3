"""Endpoint configurations' shadow variants, which moto accepts but does not store.

moto's ``CreateEndpointConfig`` drops ``ShadowProductionVariants`` (and ``DescribeEndpointConfig``
never returns them). :class:`ShadowVariantStore` keeps them for the configurations created through
the plane: it checks them as SageMaker does (one shadow variant at most, names distinct from the
production variants', a model that exists), lets moto record the rest, and adds them back to
``DescribeEndpointConfig``. A configuration created in moto behind the plane's back (a ``cdk
deploy`` to moto) has lost its shadow before the plane sees it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from mlship.local.plane.http import AwsRequest, AwsResponse, forward


def _validation(message: str) -> AwsResponse:
    return AwsResponse.error(400, "ValidationException", message)


class ShadowVariantStore:
    """``ShadowProductionVariants`` per endpoint configuration name."""

    def __init__(self, upstream: str, sagemaker: Any):
        self.upstream, self.sagemaker = upstream, sagemaker
        self._shadows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, config_name: str) -> list[dict[str, Any]]:
        """The shadow variants of ``config_name`` (empty when it has none or the plane never saw them)."""
        with self._lock:
            return list(self._shadows.get(config_name, []))

    def handle(self, operation: str, request: AwsRequest) -> AwsResponse | None:
        """Answer the endpoint-configuration calls that involve shadow variants; None for every other."""
        if operation == "CreateEndpointConfig":
            return self.create(request)
        if operation == "DescribeEndpointConfig":
            return self.describe(request)
        if operation == "DeleteEndpointConfig":
            with self._lock:
                self._shadows.pop(request.json().get("EndpointConfigName", ""), None)
        return None

    def create(self, request: AwsRequest) -> AwsResponse | None:
        """Check the shadow variants, let moto record the configuration, then keep them."""
        params = request.json()
        shadows = params.get("ShadowProductionVariants") or []
        if not shadows:
            return None
        problem = self._problem(params.get("ProductionVariants") or [], shadows)
        if problem:
            return _validation(problem)
        answer = forward(self.upstream, request)
        if answer.status == 200:
            with self._lock:
                self._shadows[params["EndpointConfigName"]] = [dict(s) for s in shadows]
        return answer

    def _problem(self, production: list[dict[str, Any]], shadows: list[dict[str, Any]]) -> str | None:
        from botocore.exceptions import ClientError

        if len(shadows) > 1:
            return "An endpoint configuration can have at most 1 shadow production variant."
        names = [v.get("VariantName") for v in production]
        for shadow in shadows:
            if shadow.get("VariantName") in names:
                return f"Variant name {shadow.get('VariantName')} is used by a production variant and a shadow variant."
            if "ServerlessConfig" in shadow or any("ServerlessConfig" in v for v in production):
                return "Shadow production variants are not supported for serverless endpoints."
            try:
                self.sagemaker.describe_model(ModelName=shadow.get("ModelName", ""))
            except ClientError:
                return f"Could not find model \"{shadow.get('ModelName')}\"."
        return None

    def describe(self, request: AwsRequest) -> AwsResponse | None:
        """moto's answer with the configuration's shadow variants added back."""
        shadows = self.get(request.json().get("EndpointConfigName", ""))
        if not shadows:
            return None
        answer = forward(self.upstream, request)
        if answer.status != 200:
            return answer
        document = json.loads(answer.body)
        document["ShadowProductionVariants"] = shadows
        return AwsResponse.json(document)
