"""The shared model lifecycle (load once, remembered failures, transient retries, records) and the
typed download errors it retries on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mlship.errors import BundleError, BundleNotFound, GoldenCheckError, TransientDownloadError
from mlship.runtime.lifecycle import ModelLifecycle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedLoader:
    """Raises (or returns) the scripted outcomes in turn, counting its calls."""

    def __init__(self, *outcomes: Any):
        self.outcomes, self.calls = list(outcomes), 0

    def __call__(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class ListSink:
    def __init__(self, fail: bool = False):
        self.added: list[dict[str, Any]] = []
        self.flushed: list[list[dict[str, Any]]] = []
        self.fail = fail

    def add(self, records: list[dict[str, Any]]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.added += records

    def flush(self) -> None:
        if self.fail:
            raise OSError("S3 unreachable")
        self.flushed.append(self.added)
        self.added = []

    def __len__(self) -> int:
        return len(self.added)


# ---------------------------------------------------------------------------- loading in the caller's thread
def test_loads_once_and_reports_the_load():
    loader, seen = ScriptedLoader("model"), []
    lifecycle = ModelLifecycle(loader, on_loaded=lambda model, seconds: seen.append((model, seconds >= 0)))
    assert lifecycle.load() == "model" and lifecycle.load() == "model"
    assert loader.calls == 1 and seen == [("model", True)]
    assert lifecycle.health().ok and lifecycle.health().model == "model"


@pytest.mark.parametrize("error", [GoldenCheckError("golden example 3 differs"),
                                   BundleNotFound("cannot download bundle s3://b/k.tar.gz: NoSuchKey"),
                                   BundleError("bundle verification failed")])
def test_a_deterministic_failure_is_remembered_and_never_retried(error):
    clock, loader = FakeClock(), ScriptedLoader(error, "model")
    lifecycle = ModelLifecycle(loader, retry_seconds=60, clock=clock)
    for advance in (0, 30, 3600):
        clock.now += advance
        with pytest.raises(BundleError) as raised:
            lifecycle.load()
        assert raised.value is error
    assert loader.calls == 1
    health = lifecycle.health()
    assert (health.status, health.reason) == ("failed", str(error))


def test_a_transient_failure_is_retried_at_most_every_interval():
    clock = FakeClock()
    first, second = TransientDownloadError("SlowDown"), TransientDownloadError("503")
    loader = ScriptedLoader(first, second, "model")
    lifecycle = ModelLifecycle(loader, retry_seconds=60, clock=clock)
    with pytest.raises(TransientDownloadError):
        lifecycle.load()
    clock.now += 59.9  # within the interval: the remembered error, no new attempt
    with pytest.raises(TransientDownloadError) as raised:
        lifecycle.load()
    assert raised.value is first and loader.calls == 1
    clock.now += 0.1
    with pytest.raises(TransientDownloadError) as raised:
        lifecycle.load()
    assert raised.value is second and loader.calls == 2
    clock.now += 60
    assert lifecycle.load() == "model" and loader.calls == 3
    clock.now += 3600
    assert lifecycle.load() == "model" and loader.calls == 3


def test_an_unexpected_exception_becomes_a_remembered_bundle_error():
    clock, loader = FakeClock(), ScriptedLoader(MemoryError("onnxruntime arena"))
    lifecycle = ModelLifecycle(loader, clock=clock)
    with pytest.raises(BundleError, match="unexpected error") as raised:
        lifecycle.load()
    assert "onnxruntime arena" not in str(raised.value)  # callers see no exception text; the log has it
    hidden = ModelLifecycle(ScriptedLoader(KeyError("x")), unexpected=lambda exc: BundleError("see the log"))
    with pytest.raises(BundleError, match="^see the log$"):
        hidden.load()
    clock.now += 3600  # not a transient download: not retried
    with pytest.raises(BundleError):
        lifecycle.load()
    assert loader.calls == 1


# ---------------------------------------------------------------------------- loading in the background
class GatedLoader:
    """Blocks until ``gate`` is set, then loads (or fails) as scripted."""

    def __init__(self, *outcomes: Any):
        self.gate, self.script = threading.Event(), ScriptedLoader(*outcomes)

    def __call__(self) -> Any:
        assert self.gate.wait(10)
        return self.script()


def test_background_load_reports_loading_then_ok_and_wait_times_out_meanwhile():
    loader = GatedLoader("model")
    lifecycle = ModelLifecycle(loader).start()
    assert lifecycle.health().status == "loading"
    with pytest.raises(BundleError, match="still loading"):
        lifecycle.wait(0.05)
    loader.gate.set()
    assert lifecycle.wait(10) == "model"
    assert lifecycle.health().ok and loader.script.calls == 1


def test_background_transient_failure_is_retried_by_a_health_check_after_the_interval():
    clock, loader = FakeClock(), GatedLoader(TransientDownloadError("connection refused"), "model")
    loader.gate.set()
    lifecycle = ModelLifecycle(loader, retry_seconds=60, clock=clock).start()
    with pytest.raises(TransientDownloadError):
        lifecycle.wait(10)
    assert lifecycle.health().status == "failed" and loader.script.calls == 1
    clock.now += 60
    lifecycle.health()  # starts the retry
    assert lifecycle.wait(10) == "model" and loader.script.calls == 2
    assert lifecycle.health().ok


def test_concurrent_callers_share_one_load():
    loader = GatedLoader("model")
    lifecycle = ModelLifecycle(loader)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(lifecycle.load())) for _ in range(4)]
    for thread in threads:
        thread.start()
    loader.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == ["model"] * 4 and loader.script.calls == 1


# ---------------------------------------------------------------------------- records
def test_records_go_to_the_sink_and_its_failures_are_logged_not_raised(caplog):
    sink = ListSink()
    lifecycle = ModelLifecycle(ScriptedLoader("model"), sink=sink)
    assert lifecycle.recording
    lifecycle.record([{"row": 0}, {"row": 1}])
    lifecycle.record([])
    lifecycle.flush()
    lifecycle.flush()  # nothing buffered: no empty write
    assert sink.flushed == [[{"row": 0}, {"row": 1}]]

    failing_sink = ListSink(fail=True)
    failing = ModelLifecycle(ScriptedLoader("model"), sink=failing_sink)
    failing.record([{"row": 0}])
    failing_sink.added = [{"row": 1}]  # buffered earlier, then S3 goes away
    failing.flush()
    assert "could not buffer inference records: disk full" in caplog.text
    assert "could not write inference records: S3 unreachable" in caplog.text
    assert not ModelLifecycle(ScriptedLoader("model")).recording


# ---------------------------------------------------------------------------- typed download errors
def test_missing_s3_bundles_are_not_found(aws, tmp_path, monkeypatch, churn_bundle):
    """moto: a missing key, a missing bucket and an empty prefix are BundleNotFound, and the
    lifecycle does not retry them."""
    from mlship.aws.clients import client
    from mlship.aws.s3 import open_source

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    client("s3").create_bucket(Bucket="bundles")
    for uri in ("s3://bundles/churn/9/model.tar.gz", "s3://no-such-bucket/churn.tar.gz", "s3://bundles/empty/"):
        with pytest.raises(BundleNotFound, match="s3://"):
            open_source(uri)
    clock = FakeClock()
    loader_calls = []

    def loader() -> Any:
        loader_calls.append(1)
        return open_source("s3://bundles/churn/9/model.tar.gz")

    lifecycle = ModelLifecycle(loader, retry_seconds=60, clock=clock)
    with pytest.raises(BundleNotFound):
        lifecycle.load()
    client("s3").upload_file(f"{churn_bundle}.tar.gz", "bundles", "churn/9/model.tar.gz")
    clock.now += 3600
    with pytest.raises(BundleNotFound):  # the object exists now, but a missing bundle is not retried
        lifecycle.load()
    assert len(loader_calls) == 1


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("Throttling", 400), ("", 500), ("", 503)])
def test_throttling_and_5xx_answers_are_transient(aws, tmp_path, monkeypatch, code, status):
    """botocore's Stubber, not a real server: the stubbed answer skips the client's standard-mode
    retries (5 attempts with backoff against a real 503), so the test is instant and exact about
    the error code and status the classification sees."""
    from botocore.stub import Stubber

    from mlship.aws.clients import client
    from mlship.aws.s3 import open_source

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    with Stubber(client("s3")) as stub:
        stub.add_client_error("head_object", service_error_code=code, http_status_code=status)
        with pytest.raises(TransientDownloadError, match="cannot download bundle s3://bundles/churn.tar.gz"):
            open_source("s3://bundles/churn.tar.gz")


def test_access_denied_is_neither_missing_nor_transient(aws, tmp_path, monkeypatch):
    from botocore.stub import Stubber

    from mlship.aws.clients import client
    from mlship.aws.s3 import open_source

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    with Stubber(client("s3")) as stub, pytest.raises(BundleError) as raised:
        stub.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
        open_source("s3://bundles/churn.tar.gz")
    assert type(raised.value) is BundleError


def test_a_closed_port_is_transient(tmp_path, monkeypatch):
    """A real connection refused (EndpointConnectionError), with one attempt instead of five."""
    from mlship.aws import clients
    from mlship.aws.s3 import open_source
    from mlship.local.environment import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    clients.clear_cache()
    try:
        for uri in ("s3://bundles/churn.tar.gz", "s3://bundles/churn/"):
            with pytest.raises(TransientDownloadError, match="Could not connect"):
                open_source(uri)
    finally:
        clients.clear_cache()


def test_local_paths_are_untouched(tmp_path: Path):
    from mlship.runtime.sources import open_bundle

    with pytest.raises(BundleError, match="bundle not found") as raised:
        open_bundle(tmp_path / "nothing-here")
    assert not isinstance(raised.value, TransientDownloadError)


# ---------------------------------------------------------------------------- serve's app on the lifecycle
def _wsgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[str, dict[str, Any]]:
    import io
    import json

    seen: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
    data = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return seen[0], json.loads(data)


def test_serve_app_retries_a_transient_load_from_ping(predictor, holdout_records):
    """A worker whose first download failed transiently: /ping says failed, and once the interval
    has passed a /ping starts the retry; invocations then answer."""
    import json

    from mlship.serving.app import InvocationsApp

    clock = FakeClock()
    loader = ScriptedLoader(TransientDownloadError("cannot download bundle s3://b/k.tar.gz: SlowDown"), predictor)
    lifecycle = ModelLifecycle(loader, retry_seconds=60, clock=clock).start()
    app = InvocationsApp(lifecycle, load_wait=10)
    body = json.dumps(holdout_records[0]).encode()
    status, answer = _wsgi(app, "POST", "/invocations", body)
    assert status.startswith("503") and "SlowDown" in answer["reason"]
    status, answer = _wsgi(app, "GET", "/ping")
    assert status.startswith("503") and answer["status"] == "failed" and loader.calls == 1
    clock.now += 60
    _wsgi(app, "GET", "/ping")  # starts the retry in the background
    assert lifecycle.wait(10) is predictor and loader.calls == 2
    status, answer = _wsgi(app, "GET", "/ping")
    assert status.startswith("200") and answer["model"]["name"] == "churn"
    status, answer = _wsgi(app, "POST", "/invocations", body)
    assert status.startswith("200") and len(answer["predictions"]) == 1


def test_a_throttled_registry_read_is_a_transient_download_error(monkeypatch):
    """``mlship://`` resolution: S3 throttling the alias read is worth a retry, a missing alias is not.

    Stubber (not moto): moto never throttles; the answer is validated against S3's service model.
    """
    import boto3
    from botocore.stub import Stubber

    from mlship.errors import TransientDownloadError
    from mlship.registry import store

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(s3)
    stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
    stub.activate()
    monkeypatch.setattr(store.Registry, "s3", property(lambda self: s3))
    with pytest.raises(TransientDownloadError, match="SlowDown"):
        store.open_source("mlship://churn@champion?bucket=reg")
