"""The prediction Lambda's environment: ``PredictSettings.from_env()``, stdlib only (cold starts).

A sibling of ``handler.py``: the Lambda asset copies ``functions/predict/*.py`` flat to its root,
so the handler imports this module as ``settings`` there and as ``functions.predict.settings``
in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlship.runtime.protocol import DEFAULT_MAX_BODY_BYTES
from mlship.runtime.records import DEFAULT_PREFIX
from mlship.runtime.settings import EnvSettings, SettingsError, parse_bool, setting

BACKENDS = ("onnx", "sagemaker")
CAPTURE_MODES = ("log", "s3", "off")


def _capture_mode(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in CAPTURE_MODES:
        raise ValueError(" or ".join(CAPTURE_MODES))
    return mode


def _backend(raw: str) -> str:
    name = raw.strip().lower()
    if name not in BACKENDS:
        raise ValueError(" or ".join(BACKENDS))
    return name


def _loose_flag(raw: str) -> bool:
    """Powertools' reading of its flags: only 1/true switch them on."""
    return raw.strip().lower() in ("1", "true")


@dataclass(frozen=True, kw_only=True)
class PredictSettings(EnvSettings):
    """What the prediction Lambda reads; a bad value is refused before the model loads."""

    model_uri: str = setting("MODEL_URI", "", doc="bundle to serve: directory, .tar.gz, s3:// or mlship://NAME@ALIAS "
                                                  "(with MLSHIP_REGISTRY_BUCKET); required with the onnx backend")
    backend: str = setting("PREDICT_BACKEND", "onnx", parse=_backend,
                           doc="onnx (in-process) or sagemaker (proxy to SAGEMAKER_ENDPOINT_NAME)")
    sagemaker_endpoint: str = setting("SAGEMAKER_ENDPOINT_NAME", "",
                                      doc="endpoint the sagemaker backend invokes (required with it)")
    capture_mode: str = setting("CAPTURE_MODE", "log", parse=_capture_mode,
                                doc="inference capture: log (one stdout line per request, delivered by the log "
                                    "subscription and Firehose), s3 (one PutObject per request, opt-in) or off")
    sampling_percentage: float = setting("CAPTURE_SAMPLING_PERCENTAGE", 100.0, minimum=0, maximum=100,
                                         doc="share of answered requests captured, in percent")
    records_bucket: str = setting("RECORDS_BUCKET", "", doc="bucket for inference records (CAPTURE_MODE=s3)")
    records_prefix: str = setting("RECORDS_PREFIX", DEFAULT_PREFIX, doc="key prefix of inference records")
    public_key: str = setting("MLSHIP_PUBLIC_KEY", "", doc="PEM public key (or a path): makes the bundle "
                                                           "signature mandatory")
    max_body_bytes: int = setting("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1,
                                  doc="largest accepted request body, in bytes")
    ort_threads: int = setting("ORT_THREADS", 0, minimum=0, doc="onnxruntime threads (0: its default)")
    eager_load: bool = setting("MLSHIP_EAGER_LOAD", True, parse=parse_bool,
                               doc="load the model during the Lambda init phase")
    function_version: str = setting("AWS_LAMBDA_FUNCTION_VERSION", "", doc="set by Lambda: the version answering "
                                                                          "(each capture record's variant)")
    metrics_disabled: bool = setting("POWERTOOLS_METRICS_DISABLED", False, parse=_loose_flag,
                                     doc="no EMF metrics (1 or true)")
    shadow_model_uri: str = setting("SHADOW_MODEL_URI", "", doc="shadow model scored on a copy of each captured "
                                    "request, pinned to one version (a bundle path, s3:// or mlship://NAME/VERSION)")
    shadow_budget_ms: float = setting("SHADOW_BUDGET_MS", 50.0, minimum=1, maximum=10_000,
                                      doc="longest the answer waits for the shadow, in milliseconds")
    ab_variants: str = setting("AB_VARIANTS", "", doc="sagemaker backend: an A/B test's variants and weights "
                               "(blue=0.5,green=0.5); a request with a unit id always gets the same one")
    ab_unit_header: str = setting("AB_UNIT_HEADER", "x-mlship-unit", doc="request header holding the unit id")
    ab_unit_field: str = setting("AB_UNIT_FIELD", "", doc="record field holding the unit id (when no header)")
    ab_salt: str = setting("AB_SALT", "", doc="the experiment's hash salt (default: the endpoint name)")

    def __post_init__(self) -> None:
        if self.backend == "onnx" and not self.model_uri:
            raise SettingsError("MODEL_URI", None, "the bundle to serve: a directory, .tar.gz, s3:// or "
                                "mlship:// URI")
        if self.backend == "sagemaker" and not self.sagemaker_endpoint:
            raise SettingsError("SAGEMAKER_ENDPOINT_NAME", None, "the endpoint PREDICT_BACKEND=sagemaker invokes")
        if self.capture_mode == "s3" and not self.records_bucket:
            raise SettingsError("RECORDS_BUCKET", None, "the bucket CAPTURE_MODE=s3 writes records to")
        if self.shadow_model_uri:
            self._check_shadow()
        if self.ab_variants:
            self._check_ab()

    def _check_ab(self) -> None:
        from mlship.runtime.assignment import parse_weights

        if self.backend != "sagemaker":
            raise SettingsError("AB_VARIANTS", self.ab_variants, "PREDICT_BACKEND=sagemaker (the endpoint's "
                                "production variants are the arms)")
        try:
            parse_weights(self.ab_variants)
        except ValueError as exc:
            raise SettingsError("AB_VARIANTS", self.ab_variants, str(exc)) from None

    def _check_shadow(self) -> None:
        if self.backend != "onnx" or self.capture_mode != "log":
            raise SettingsError("SHADOW_MODEL_URI", self.shadow_model_uri, "a shadow needs the onnx backend and "
                                "CAPTURE_MODE=log (its answers are written to the capture lines)")
        if self.shadow_model_uri.startswith("mlship://") and "@" in self.shadow_model_uri.split("?", 1)[0]:
            raise SettingsError("SHADOW_MODEL_URI", self.shadow_model_uri, "a shadow pinned to one version: "
                                "mlship://NAME/VERSION, not an alias (an alias can move while the shadow runs)")


@dataclass(frozen=True, kw_only=True)
class InitSettings(EnvSettings):
    """What the handler reads at import: Powertools' names and whether it runs in Lambda (no value
    is invalid, so the import never fails)."""

    namespace: str = setting("POWERTOOLS_METRICS_NAMESPACE", "mlship", doc="CloudWatch metrics namespace")
    service: str = setting("POWERTOOLS_SERVICE_NAME", "mlship-predict", doc="service name in logs and traces")
    function_name: str = setting("AWS_LAMBDA_FUNCTION_NAME", "", doc="set by Lambda (the model loads during init)")
    tracing: bool = setting("MLSHIP_TRACING", False, parse=_loose_flag,
                            doc="X-Ray subsegments from Powertools' Tracer (1 or true); off, the X-Ray SDK is "
                                "never imported and Lambda's active tracing still records the function segment")
