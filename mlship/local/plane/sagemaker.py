"""SageMaker on the plane: endpoints that really run, update blue/green and answer ``invoke_endpoint``.

moto records endpoints but implements no ``UpdateEndpoint`` and serves canned predictions. This
service answers, in SageMaker's JSON protocol, ``CreateEndpoint`` (recorded in moto, then the
fleet is started: ``Creating`` until ``/ping`` passes), ``UpdateEndpoint`` (blue/green as in
:mod:`mlship.local.plane.endpoints`; refused while another update runs, as SageMaker refuses it),
``DescribeEndpoint``, ``DeleteEndpoint`` and ``UpdateEndpointWeightsAndCapacities``; every other
SageMaker call passes through to moto. It also answers the sagemaker-runtime route
``POST /endpoints/{name}/invocations`` from the fleet the traffic share picks, applies rehearsal
faults, and publishes ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors`` and
``ModelLatency`` (microseconds) per variant to the local CloudWatch (namespace ``AWS/SageMaker``,
dimensions ``EndpointName``, ``VariantName``). Endpoints created in moto behind the plane's back
(``cdk deploy`` to moto) are adopted on first use.

Shadow variants (``ShadowProductionVariants``, kept by
:class:`~mlship.local.plane.endpoint_configs.ShadowVariantStore` because moto drops them) run in
the same fleet; each answered request is then copied to the shadow in the background
(:class:`~mlship.local.plane.shadow.ShadowMirror`) with the same ``InferenceId``, and the
shadow's answer is captured and published, never returned. ``DataCaptureConfig`` is honoured for
production and shadow variants alike (:mod:`mlship.local.plane.datacapture`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any

from botocore.exceptions import ClientError

from mlship.local.plane.container import ServiceError, http_call
from mlship.local.plane.datacapture import CaptureEvent, CaptureWriter
from mlship.local.plane.endpoint_configs import ShadowVariantStore
from mlship.local.plane.endpoints import Deployer, Deployment, EndpointState, new_state
from mlship.local.plane.fleet import Fleet, FleetVariant, fleet_from_config
from mlship.local.plane.http import AwsRequest, AwsResponse, Service, forward
from mlship.local.plane.metrics import AlarmEvaluator
from mlship.local.plane.shadow import ShadowCopy, ShadowMirror

ACCOUNT = "123456789012"  # moto's default account
INVOKE_ROUTE = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations/?$")
DEFAULT_DEPLOYMENT = {"BlueGreenUpdatePolicy": {
    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
    "TerminationWaitInSeconds": 0}}
# moto has no UpdateEndpoint: the configuration an update ends on is kept as this tag of the endpoint
# in moto, so a plane started later (a new `mlship local up`, the next demo step) adopts the endpoint
# on the configuration it served last, not on its creation configuration.
LIVE_CONFIG_TAG = "mlship:live-endpoint-config"
_FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-inference-id", "x-amzn-sagemaker-custom-attributes")


def _validation(message: str) -> AwsResponse:
    return AwsResponse.error(400, "ValidationException", message)


class SageMakerService(Service):
    """The endpoints the plane runs, by name."""

    def __init__(self, context: Any, *, serve_workers: int = 1, ready_timeout: float = 120.0,
                 capture_flush_seconds: float = 5.0):
        self.context = context
        self.sagemaker = context.client("sagemaker")
        self.alarms = AlarmEvaluator(context)
        self.shadow_configs = ShadowVariantStore(context.upstream, self.sagemaker)
        self.capture = CaptureWriter(context.client("s3"), flush_seconds=capture_flush_seconds)
        self.mirror = ShadowMirror(self._replay_shadow)
        self.serve_workers, self.ready_timeout = serve_workers, ready_timeout
        self.endpoints: dict[str, EndpointState] = {}
        self._lock = threading.Lock()
        self._adopting = threading.Lock()

    def fleet_options(self) -> dict[str, Any]:
        return {"workers": self.serve_workers, "log_dir": self.context.log_dir, "ready_timeout": self.ready_timeout}

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: AwsRequest) -> AwsResponse | None:
        match = INVOKE_ROUTE.match(request.path)
        if request.method == "POST" and match:
            return self.invoke(urllib.parse.unquote(match["name"]), request)
        service, _, operation = request.target.partition(".")
        if service != "SageMaker":
            return None
        handler = {"CreateEndpoint": self.create_endpoint, "UpdateEndpoint": self.update_endpoint,
                   "DescribeEndpoint": self.describe_endpoint, "DeleteEndpoint": self.delete_endpoint,
                   "UpdateEndpointWeightsAndCapacities": self.update_weights}.get(operation)
        return handler(request) if handler else self.shadow_configs.handle(operation, request)

    def _fleet(self, config_name: str) -> Fleet:
        return fleet_from_config(self.sagemaker, config_name, self.shadow_configs.get(config_name))

    def _new_state(self, name: str, arn: str, config_name: str) -> EndpointState:
        return new_state(self.sagemaker, name, arn, config_name, self.shadow_configs.get(config_name))

    def _state(self, name: str) -> EndpointState | None:
        """The endpoint's state; one moto knows but the plane does not is adopted (fleet started now)."""
        with self._lock:
            state = self.endpoints.get(name)
        if state is not None:
            return state
        with self._adopting:  # two first requests must not start two fleets (one would never be stopped)
            with self._lock:
                state = self.endpoints.get(name)
            if state is not None:
                return state
            try:
                found = self.sagemaker.describe_endpoint(EndpointName=name)
            except ClientError:
                return None
            state = self._new_state(name, found["EndpointArn"], self._live_config(found))
            try:
                state.blue.start(**self.fleet_options())
            except ServiceError as exc:  # DescribeEndpoint then says why, as SageMaker does
                state.set_status("Failed", f"the fleet of {state.config_name} failed the ping health check: {exc}")
            else:
                state.set_status("InService")
            with self._lock:
                return self.endpoints.setdefault(name, state)

    def _live_config(self, found: dict[str, Any]) -> str:
        """The configuration an earlier plane's last update ended on (its tag), else moto's."""
        try:
            tags = self.sagemaker.list_tags(ResourceArn=found["EndpointArn"]).get("Tags", [])
        except ClientError:
            tags = []
        tagged = [t["Value"] for t in tags if t.get("Key") == LIVE_CONFIG_TAG]  # moto appends: the last is newest
        return tagged[-1] if tagged else str(found["EndpointConfigName"])

    def remember_config(self, state: EndpointState) -> None:
        """Keep the configuration ``state`` now serves as the endpoint's tag in moto (see LIVE_CONFIG_TAG)."""
        with contextlib.suppress(ClientError):  # the tag only helps a later plane adopt it; serving is unaffected
            self.sagemaker.add_tags(ResourceArn=state.arn, Tags=[{"Key": LIVE_CONFIG_TAG, "Value": state.config_name}])

    # ------------------------------------------------------------------ control plane calls
    def create_endpoint(self, request: AwsRequest) -> AwsResponse:
        """Record the endpoint in moto, then start its fleet in the background."""
        params = request.json()
        name = params.get("EndpointName", "")
        with self._lock:
            if name in self.endpoints:
                return _validation(f'Cannot create already existing endpoint "arn:aws:sagemaker:'
                                   f'{self.context.region}:{ACCOUNT}:endpoint/{name.lower()}".')
        answer = forward(self.context.upstream, request)
        if answer.status != 200:
            return answer
        state = self._new_state(name, json.loads(answer.body)["EndpointArn"], params["EndpointConfigName"])
        state.last_deployment_config = params.get("DeploymentConfig")
        with self._lock:
            self.endpoints[name] = state
        threading.Thread(target=self._provision, args=(state,), name=f"create-{name}", daemon=True).start()
        return answer

    def _provision(self, state: EndpointState) -> None:
        try:
            state.blue.start(**self.fleet_options())
        except ServiceError as exc:
            state.set_status("Failed", f"The primary container for production variant "
                             f"{state.blue.variants[0].name} did not pass the ping health check: {exc}")
        else:
            state.set_status("InService", "")

    def update_endpoint(self, request: AwsRequest) -> AwsResponse:
        """Start a blue/green update; refuse one on an endpoint that is not ``InService``."""
        params = request.json()
        name, config_name = params.get("EndpointName", ""), params.get("EndpointConfigName", "")
        state = self._state(name)
        if state is None:
            return _validation(f"Could not find endpoint \"{name}\".")
        try:
            green = self._fleet(config_name)
        except ClientError:
            return _validation(f"Could not find endpoint configuration \"{config_name}\".")
        except ServiceError as exc:
            return _validation(str(exc))
        policy = params.get("DeploymentConfig") or DEFAULT_DEPLOYMENT
        alarms = [a["AlarmName"] for a in (policy.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
        with state.lock:
            if state.status != "InService" or state.deployment is not None:
                return _validation(f'Cannot update in-progress endpoint "{state.arn}".')
            state.deployment = Deployment(config_name, green, policy, alarms)
            state.last_deployment_config = policy
            state.set_status("Updating", "")
        threading.Thread(target=Deployer(self, state, state.deployment).run, name=f"update-{name}",
                         daemon=True).start()
        return AwsResponse.json({"EndpointArn": state.arn})

    def describe_endpoint(self, request: AwsRequest) -> AwsResponse | None:
        """The plane's state of the endpoint (one only moto knows is adopted first)."""
        state = self._state(request.json().get("EndpointName", ""))
        return None if state is None else AwsResponse.json(state.describe())

    def delete_endpoint(self, request: AwsRequest) -> AwsResponse:
        """Stop the endpoint's fleets and delete it in moto."""
        with self._lock:
            state = self.endpoints.pop(request.json().get("EndpointName", ""), None)
        if state is not None:
            fleets: list[Fleet] = [state.blue] + ([state.deployment.green] if state.deployment else [])
            for fleet in fleets:
                fleet.stop(drain_seconds=5)
        return forward(self.context.upstream, request)

    def update_weights(self, request: AwsRequest) -> AwsResponse:
        """Change the live fleet's variant weights (refused during an update, as SageMaker does)."""
        params = request.json()
        state = self._state(params.get("EndpointName", ""))
        if state is not None and state.deployment is not None:
            return _validation(f'Cannot update in-progress endpoint "{state.arn}".')
        answer = forward(self.context.upstream, request)
        if state is not None and answer.status == 200:
            desired = {d["VariantName"]: d for d in params.get("DesiredWeightsAndCapacities", [])}
            with state.lock:
                for variant in state.blue.variants:
                    if "DesiredWeight" in desired.get(variant.name, {}):
                        variant.weight = float(desired[variant.name]["DesiredWeight"])
        return answer

    # ------------------------------------------------------------------ runtime
    def invoke(self, name: str, request: AwsRequest) -> AwsResponse:
        """``InvokeEndpoint``: a real prediction from the fleet and variant the traffic share picks."""
        try:
            state = self._state(name)
            if state is None:
                raise ServiceError(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
            if state.status in ("Creating", "Failed", "Deleting"):
                raise ServiceError(400, "ValidationError", f"Endpoint {name} is {state.status}: it takes no "
                                   "invocations")
            fleet, variant = state.route(request.headers.get("x-amzn-sagemaker-target-variant"))
            try:
                return self._call(state, fleet, variant, request)
            finally:
                fleet.release()
        except ServiceError as exc:
            return AwsResponse(exc.status, json.dumps({"message": str(exc), **exc.fields}).encode(),
                               {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code})

    def _call(self, state: EndpointState, fleet: Fleet, variant: FleetVariant, request: AwsRequest) -> AwsResponse:
        process = variant.process
        assert process is not None
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        status, data, out_type, latency_us = self._exchange(fleet, variant, request.body, headers)
        self._publish(state.name, variant.name, status, latency_us)
        self._observe(state, fleet, variant, request, headers, (status, data, out_type))
        if status != 200:
            kind = "client" if status < 500 else "server"
            text = data.decode("utf-8", "replace")
            raise ServiceError(424, "ModelError", f'Received {kind} error ({status}) from primary with message '
                               f'"{text[:500]}". See {process.log_path} for more information.',
                               OriginalStatusCode=status, OriginalMessage=text, LogStreamArn=process.log_path or "")
        return AwsResponse(200, data, {"Content-Type": "application/json",
                                       "x-Amzn-Invoked-Production-Variant": variant.name})

    @staticmethod
    def _exchange(fleet: Fleet, variant: FleetVariant, body: bytes,
                  headers: dict[str, str]) -> tuple[int, bytes, str, float]:
        """One request to one container with the variant's rehearsal faults: status, body, content type, µs."""
        fault, process = variant.fault, variant.process
        assert process is not None
        started = time.perf_counter()
        if fault.latency_seconds:
            time.sleep(fault.latency_seconds)
        if fault.error_rate and fleet._random.random() < fault.error_rate:
            status, data = 500, b'{"error": {"kind": "injected_fault", "message": "injected by --fault errors"}}'
            out_type = "application/json"
        else:
            try:
                status, data, answer_headers = http_call("POST", f"{process.url}/invocations", body, headers)
                out_type = answer_headers.get("content-type", "application/json")
            except OSError as exc:  # the container is gone: SageMaker answers a model error
                status, data = 503, json.dumps({"error": {"kind": "unavailable", "message": str(exc)}}).encode()
                out_type = "application/json"
        return status, data, out_type, (time.perf_counter() - started) * 1e6

    def _observe(self, state: EndpointState, fleet: Fleet, variant: FleetVariant, request: AwsRequest,
                 headers: dict[str, str], answer: tuple[int, bytes, str]) -> None:
        """Buffer the capture line and queue the shadow copy: no I/O while the client waits."""
        status, data, out_type = answer
        event_id, now = str(uuid.uuid4()), time.time()
        inference_id = request.headers.get("x-amzn-sagemaker-inference-id") or None
        capture = fleet.capture
        sampled = capture is not None and fleet._random.random() * 100.0 < capture.sampling_percentage
        if capture is not None and sampled and status == 200:
            self.capture.add(capture, CaptureEvent(
                state.name, variant.name, event_id, inference_id, now,
                request.headers.get("content-type", "application/octet-stream"), request.body, out_type, data))
        if fleet.shadows and fleet._random.random() < fleet.shadow_share(variant):
            self.mirror.submit(ShadowCopy(state.name, fleet, fleet.shadows[0], request.body, headers, event_id,
                                          inference_id, now, sampled))

    def _replay_shadow(self, copy: ShadowCopy) -> None:
        """Run one copy on the shadow variant (a mirror thread): publish and capture its answer, return nothing."""
        status, data, out_type, latency_us = self._exchange(copy.fleet, copy.variant, copy.body, copy.headers)
        self._publish(copy.endpoint, copy.variant.name, status, latency_us)
        capture = copy.fleet.capture
        if capture is not None and copy.capture and status == 200:
            self.capture.add(capture, CaptureEvent(
                copy.endpoint, copy.variant.name, copy.event_id, copy.inference_id, time.time(),
                copy.headers.get("content-type", "application/octet-stream"), copy.body, out_type, data))

    def flush_capture(self) -> int:
        """Wait for the queued shadow copies, then write the buffered capture lines; the objects written."""
        self.mirror.drain()
        return self.capture.flush()

    def _publish(self, endpoint: str, variant: str, status: int, latency_us: float) -> None:
        dims = {"EndpointName": endpoint, "VariantName": variant}
        store = self.context.metrics
        store.record("AWS/SageMaker", "Invocations", dims, 1, "Count")
        store.record("AWS/SageMaker", "Invocation4XXErrors", dims, 1 if 400 <= status < 500 else 0, "Count")
        store.record("AWS/SageMaker", "Invocation5XXErrors", dims, 1 if status >= 500 else 0, "Count")
        store.record("AWS/SageMaker", "ModelLatency", dims, latency_us, "Microseconds")

    def close(self) -> None:
        """Stop the shadow copies, every fleet (shadow variants included), then write the capture left."""
        with self._lock:
            states, self.endpoints = list(self.endpoints.values()), {}
        self.mirror.close()
        for state in states:
            for fleet in [state.blue] + ([state.deployment.green] if state.deployment else []):
                fleet.stop(drain_seconds=0)
        self.capture.close()
