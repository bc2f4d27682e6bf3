"""Clients nobody here wrote, unchanged, against the local control plane: the SageMaker Python SDK
(``sagemaker`` 3.x ``sagemaker.core.resources``) and boto3's ``sagemaker`` / ``sagemaker-runtime``,
configured only by the ``AWS_ENDPOINT_URL_*`` variables ``mlship local env`` exports."""

from __future__ import annotations

import json
from typing import Any

import boto3

from release.plane import create_config, upload, wait_status


def test_sagemaker_sdk_reads_waits_for_and_invokes_a_plane_endpoint(plane: Any, moto_server: str,
                                                                    versioned_bundles: dict, record: dict,
                                                                    monkeypatch: Any) -> None:
    from sagemaker.core.resources import Endpoint

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.Session(region_name="us-east-1")
    sm = session.client("sagemaker")  # the plane, through AWS_ENDPOINT_URL_SAGEMAKER
    assert sm.meta.endpoint_url == plane.url
    s3 = session.client("s3")
    config = create_config(sm, "sdk-v1", upload(s3, versioned_bundles["1"]), "1")
    sm.create_endpoint(EndpointName="sdk-endpoint", EndpointConfigName=config)

    endpoint = Endpoint.get("sdk-endpoint", session=session, region="us-east-1")
    assert endpoint.endpoint_status in ("Creating", "InService")
    endpoint.wait_for_status("InService", poll=1, timeout=120)
    assert endpoint.endpoint_config_name == "sdk-v1"
    answer = endpoint.invoke(body=json.dumps({"instances": [record]}), content_type="application/json",
                             session=session, region="us-east-1")
    body = json.loads(answer.body.read() if hasattr(answer.body, "read") else answer.body)
    assert body["model"]["version"] == "1" and len(body["predictions"]) == 1
    assert answer.invoked_production_variant == "AllTraffic"
    wait_status(sm, "sdk-endpoint", "InService")
