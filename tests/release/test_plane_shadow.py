"""Shadow variants and data capture on the local control plane, and ``mlship rollout endpoint --shadow``.

Real components throughout: moto records the resources (and stores the capture objects), the plane
runs each variant as a local ``mlship serve`` and mirrors requests to the shadow from its own
threads. The shadow is slowed by 500 ms with the rehearsal fault on its model's environment; the
client's latency is compared between the shadow off and on (medians, a generous margin), never
against an absolute time.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.local.plane.datacapture import CaptureEvent, CaptureSettings, capture_line
from mlship.local.plane.fleet import Fleet
from mlship.local.plane.shadow import ShadowCopy, ShadowMirror
from mlship.runtime.records import _parse_data_capture
from release.plane import IMAGE, ROLE, plane_clients, upload, wait_status
from release.test_rollout_endpoint_cli import _errors, _rollout, mlship, registry  # noqa: F401 - a fixture

PRODUCTION, SHADOW = "blue", "shadow"


def _model(sm: Any, name: str, bundle_uri: str, version: str, fault: str | None = None) -> str:
    env = {"MLSHIP_MODEL_VERSION": version, **({"MLSHIP_LOCAL_FAULT": fault} if fault else {})}
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": bundle_uri, "Environment": env})
    return name


def _config(sm: Any, name: str, model: str, capture_uri: str, shadow_model: str | None = None) -> str:
    variant = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
    extra = {"ShadowProductionVariants": [{**variant, "VariantName": SHADOW, "ModelName": shadow_model}]} \
        if shadow_model else {}
    sm.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[{**variant, "VariantName": PRODUCTION, "ModelName": model}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": capture_uri,
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}, **extra)
    return name


def _invoke(runtime: Any, endpoint: str, record: dict, count: int) -> tuple[list[float], list[str]]:
    """``count`` invocations, each with its own InferenceId: client latencies (s) and the ids."""
    latencies, ids = [], []
    for _ in range(count):
        inference_id = uuid.uuid4().hex
        started = time.perf_counter()
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                         InferenceId=inference_id, Body=json.dumps({"instances": [record]}))
        body = json.loads(answer["Body"].read())
        latencies.append(time.perf_counter() - started)
        ids.append(inference_id)
        # the shadow (v2) never answers the client
        assert body["model"]["version"] == "1" and answer["InvokedProductionVariant"] == PRODUCTION
    return latencies, ids


def _captured(s3: Any, bucket: str, prefix: str) -> dict[str, list[dict]]:
    """Every captured line by the variant its key names (``prefix/endpoint/variant/yyyy/mm/dd/hh/x.jsonl``)."""
    out: dict[str, list[dict]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            parts = item["Key"][len(prefix):].split("/")
            assert len(parts) == 6 and parts[-1].endswith(".jsonl"), item["Key"]
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            out.setdefault(parts[0], []).extend(json.loads(line) for line in body.splitlines())
    return out


def _update(sm: Any, endpoint: str, config: str) -> None:
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    assert wait_status(sm, endpoint, "InService")["EndpointConfigName"] == config


def test_a_slow_shadow_gets_every_request_without_slowing_the_client(
        plane: Any, moto_server: str, versioned_bundles: dict[str, Any], record: dict) -> None:
    clients = plane_clients(plane, moto_server)
    sm, s3, name = clients["sagemaker"], clients["s3"], "shadowed"
    bucket = f"capture-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    capture_uri = f"s3://{bucket}/data-capture/churn"
    v1 = _model(sm, "shadowed-v1", upload(s3, versioned_bundles["1"]), "1")
    v2 = _model(sm, "shadowed-v2-slow", upload(s3, versioned_bundles["2"]), "2", fault="latency=500ms")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=_config(sm, "shadowed-off", v1, capture_uri))
    wait_status(sm, name, "InService")
    _invoke(clients["runtime"], name, record, 3)  # warm-up
    off, off_ids = _invoke(clients["runtime"], name, record, 20)

    _update(sm, name, _config(sm, "shadowed-on", v1, capture_uri, shadow_model=v2))
    assert sm.describe_endpoint_config(EndpointConfigName="shadowed-on")["ShadowProductionVariants"][0][
        "ModelName"] == v2
    assert [v["VariantName"] for v in sm.describe_endpoint(EndpointName=name)["ShadowProductionVariants"]] == [SHADOW]
    service = next(s for s in plane.services if type(s).__name__ == "SageMakerService")
    shadow_process = service.endpoints[name].blue.shadows[0].process
    _invoke(clients["runtime"], name, record, 3)
    on, on_ids = _invoke(clients["runtime"], name, record, 20)
    # 20 copies at 500 ms each would add ~10 s if the client waited for them; a generous margin instead
    assert statistics.median(on) < statistics.median(off) + 0.1, (statistics.median(off), statistics.median(on))

    service.flush_capture()
    assert service.mirror.dropped == 0 and service.mirror.failed == 0
    lines = _captured(s3, bucket, f"data-capture/churn/{name}/")
    by_variant = {v: {line["eventMetadata"].get("inferenceId"): line for line in got} for v, got in lines.items()}
    assert set(on_ids) <= set(by_variant[PRODUCTION]) and set(off_ids) <= set(by_variant[PRODUCTION])
    assert set(on_ids) <= set(by_variant[SHADOW]) and not set(off_ids) & set(by_variant[SHADOW])
    for inference_id in on_ids:
        production, shadow = by_variant[PRODUCTION][inference_id], by_variant[SHADOW][inference_id]
        assert production["eventMetadata"]["eventId"] == shadow["eventMetadata"]["eventId"]
        assert production["captureData"]["endpointInput"] == shadow["captureData"]["endpointInput"]
        assert shadow["captureData"]["endpointOutput"]["encoding"] == "JSON"
        assert [r["model"]["version"] for r in _parse_data_capture(shadow, None)] == ["2"]
        assert [r["model"]["version"] for r in _parse_data_capture(production, None)] == ["1"]

    _update(sm, name, _config(sm, "shadowed-off-again", v1, capture_uri))  # removing the shadow
    assert "ShadowProductionVariants" not in sm.describe_endpoint(EndpointName=name)
    assert shadow_process is not None and shadow_process.proc.poll() is not None  # the shadow fleet stopped
    _invoke(clients["runtime"], name, record, 2)


def test_a_full_shadow_queue_drops_the_copy_and_counts_it() -> None:
    started, release = threading.Event(), threading.Event()
    replayed: list[str] = []

    def replay(copy: ShadowCopy) -> None:
        started.set()
        release.wait(10)
        replayed.append(copy.event_id)

    fleet = Fleet("config", [])
    mirror = ShadowMirror(replay, workers=1, capacity=2)

    def copy(event_id: str) -> ShadowCopy:
        return ShadowCopy("ep", fleet, None, b"{}", {}, event_id, None, time.time(), False)

    assert mirror.submit(copy("a"))
    assert started.wait(10)  # the one worker is busy with "a": the queue holds two more
    assert mirror.submit(copy("b")) and mirror.submit(copy("c"))
    assert not mirror.submit(copy("d"))
    assert (mirror.submitted, mirror.dropped) == (3, 1)
    release.set()
    mirror.drain()
    assert replayed == ["a", "b", "c"] and fleet.inflight == 0
    mirror.close()


@settings(max_examples=60, deadline=None)
@given(body=st.text(max_size=200), content_type=st.sampled_from(["application/json", "text/csv", "text/plain",
                                                                  "application/json; charset=utf-8", ""]))
def test_a_captured_body_reads_back_as_it_was_sent(body: str, content_type: str) -> None:
    """Whatever the body and content type, the capture line decodes (as the record reader does) to the bytes sent."""
    from mlship.runtime.records import _decode_capture

    capture = CaptureSettings("b", "p", json_types=("application/json",), csv_types=("text/csv",))
    event = CaptureEvent("ep", "v", "e", None, 0.0, content_type, body.encode(), content_type, body.encode())
    line = json.loads(json.dumps(capture_line(capture, event)))
    assert _decode_capture(line["captureData"]["endpointInput"]) == body
    assert _decode_capture(line["captureData"]["endpointOutput"]) == body
    assert "inferenceId" not in line["eventMetadata"] and line["eventVersion"] == "0"


def test_rollout_shadow_deploys_a_version_beside_production_and_clear_shadow_removes_it(
        plane: Any, moto_server: str, registry: Any, record: dict) -> None:  # noqa: F811 - the imported fixture
    from mlship.aws import clients as aws

    clients, sm = plane_clients(plane, moto_server), aws.client("sagemaker")
    assert _rollout("churn-sh", "churn/1").exit_code == 0
    out = mlship("rollout", "endpoint", "--endpoint", "churn-sh", "--shadow", "churn/2", "--fault", "latency=500ms",
                 "--poll", "0.1", "--timeout", "120", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["outcome"], doc["model_version"]) == ("succeeded", "2")
    live = sm.describe_endpoint(EndpointName="churn-sh")
    assert [v["VariantName"] for v in live["ShadowProductionVariants"]] == ["shadow"]
    assert registry.get_alias("churn", "champion").version == "1"  # no traffic moved, champion untouched
    assert aws.client("ssm").get_parameter(Name="/mlship/dev/churn/deployed/version")["Parameter"]["Value"] == "1"
    shadow_records = [r for r in registry.rollouts("churn") if r.version == "2"]
    assert [(r.outcome, r.target, r.alias, r.details["mode"]) for r in shadow_records] == [
        ("succeeded", "endpoint:churn-sh:shadow", "shadow", "shadow")]

    _, ids = _invoke(clients["runtime"], "churn-sh", record, 5)  # v1 answers; v2 (slowed) only in capture
    service = next(s for s in plane.services if type(s).__name__ == "SageMakerService")
    service.flush_capture()
    lines = _captured(aws.client("s3"), registry.bucket, "data-capture/churn/churn-sh/")
    assert set(ids) <= {line["eventMetadata"]["inferenceId"] for line in lines["shadow"]}

    # a later production rollout keeps the shadow on its own pinned version
    assert _rollout("churn-sh", "churn/3", "--strategy", "all-at-once", "--wait", "0",
                    "--termination-wait", "0").exit_code == 0
    config = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(
        EndpointName="churn-sh")["EndpointConfigName"])
    shadow_model = sm.describe_model(ModelName=config["ShadowProductionVariants"][0]["ModelName"])
    assert shadow_model["PrimaryContainer"]["Environment"]["MLSHIP_MODEL_VERSION"] == "2"

    cleared = mlship("rollout", "endpoint", "--endpoint", "churn-sh", "--clear-shadow", "--poll", "0.1")
    assert cleared.exit_code == 0, cleared.stderr
    assert "ShadowProductionVariants" not in sm.describe_endpoint(EndpointName="churn-sh")
    for args, message in SHADOW_BAD_INPUT:
        refused = mlship("rollout", "endpoint", "--poll", "0.1", *args)
        assert refused.exit_code == 2, (args, refused.stderr)
        errors = _errors(refused)
        assert len(errors) == 1 and message in errors[0], (args, refused.stderr)


SHADOW_BAD_INPUT = [
    (("--endpoint", "churn-sh", "--clear-shadow"), "has no shadow variant to remove"),
    (("--endpoint", "churn-sh", "--shadow", "churn/9"), "version 9 is not registered"),
    (("--endpoint", "churn-sh", "--shadow", "nothing-here/1"), "is not registered"),
    (("--endpoint", "churn-none", "--shadow", "churn/2"), "does not exist yet"),
    (("--endpoint", "churn-sh", "--shadow", "churn/2", "--model", "churn/3"), "give one of"),
    (("--endpoint", "churn-sh"), "give one of"),
    (("--endpoint", "churn-sh", "--clear-shadow", "--fault", "latency=1s"), "--fault applies to a new model"),
]
