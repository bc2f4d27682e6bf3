"""CLI for real-time serving: ``mlship serve``, ``mlship invoke``, ``mlship gateway`` (the local control
plane in the foreground), ``mlship package``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _content_type(path: Path, given: str | None) -> str:
    if given:
        return given
    return "text/csv" if path.suffix.lower() in (".csv", ".txt") else "application/json"


def invoke_url(url: str, body: bytes, content_type: str, timeout: float = 60.0) -> tuple[int, Any]:
    """POST a body to an HTTP URL (API Gateway, Function URL, ``mlship serve`` /invocations)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - user-given URL
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except urllib.error.URLError as exc:
        from mlship.errors import MlshipError

        raise MlshipError(f"cannot reach {url}: {exc.reason}") from None
    try:
        return status, json.loads(data)
    except ValueError:
        return status, {"raw": data.decode("utf-8", "replace")}


def invoke_endpoint(name: str, body: bytes, content_type: str, variant: str | None = None) -> tuple[int, Any]:
    """``sagemaker-runtime invoke_endpoint`` (honours ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import client, error_code
    from mlship.errors import MlshipError

    args: dict[str, Any] = {"EndpointName": name, "ContentType": content_type, "Accept": "application/json",
                            "Body": body}
    if variant:
        args["TargetVariant"] = variant
    try:
        resp = client("sagemaker-runtime").invoke_endpoint(**args)
    except ClientError as exc:
        if error_code(exc) == "ModelError":
            status = int(exc.response.get("OriginalStatusCode") or 500)
            message = exc.response.get("OriginalMessage") or ""
            try:
                return status, json.loads(message)
            except ValueError:
                return status, {"error": message}
        raise MlshipError(f"invoke_endpoint {name} failed: {exc}") from None
    except BotoCoreError as exc:
        raise MlshipError(f"invoke_endpoint {name} failed: {exc}") from None
    answer = json.loads(resp["Body"].read())
    if isinstance(answer, dict):
        answer.setdefault("variant", resp.get("InvokedProductionVariant"))
    return 200, answer


def invoke_function(name: str, body: bytes, content_type: str) -> tuple[int, Any]:
    """``lambda invoke`` with the direct-invocation envelope of the prediction Lambda."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import client
    from mlship.errors import MlshipError

    payload = {"body": body.decode("utf-8"), "contentType": content_type, "isBase64Encoded": False}
    try:
        resp = client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    except (ClientError, BotoCoreError) as exc:
        raise MlshipError(f"lambda invoke {name} failed: {exc}") from None
    raw = resp["Payload"].read()
    if resp.get("FunctionError"):
        raise MlshipError(f"function {name} failed ({resp['FunctionError']}): {raw.decode('utf-8', 'replace')[:300]}")
    try:
        answer = json.loads(raw)
    except ValueError:
        raise MlshipError(f"function {name} answered something that is not JSON: {raw[:200]!r}") from None
    status = int(answer.pop("statusCode", 200)) if isinstance(answer, dict) else 200
    return status, answer


def serve(
    model: str = typer.Argument(None, show_default=False,
                                help="Bundle: directory, .tar.gz, s3:// or mlship:// URI "
                                     "(default: MODEL_URI, else /opt/ml/model)."),
    model_option: str = typer.Option(None, "--model", show_default=False,
                                     help="The bundle, as an option (same as the argument)."),
    host: str = typer.Option("0.0.0.0", help="Interface to listen on."),  # noqa: S104
    port: int = typer.Option(8080, help="Port (SageMaker: 8080)."),
    workers: int = typer.Option(0, help="Worker processes (0: one per CPU)."),
    threads: int = typer.Option(2, help="Request threads per worker (slow clients do not hold them)."),
    max_body_bytes: int = typer.Option(6 * 1024 * 1024, help="Largest accepted request body."),
    request_timeout: float = typer.Option(20.0, help="Seconds a client has to send a whole request "
                                                     "(then 408 and the connection closes)."),
    access_log: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve a bundle with SageMaker's inference contract (/ping, /invocations)."""
    from mlship.errors import MlshipError
    from mlship.serving.server import ServeConfig, run
    from mlship.serving.settings import ServeSettings

    if model and model_option and model != model_option:
        raise MlshipError(f"two bundles given ({model} and --model {model_option}): give one")
    uri = model or model_option or ServeSettings.from_env().model_uri
    run(ServeConfig(model=uri, host=host, port=port, workers=workers, threads=threads,
                    max_body_bytes=max_body_bytes, access_log=access_log, request_timeout=request_timeout))


def invoke(
    file: Path = typer.Argument(..., help="A JSON or CSV file to send.", exists=True, dir_okay=False),
    url: str = typer.Option(None, help="HTTP URL: API Gateway, Function URL or a server's /invocations."),
    endpoint: str = typer.Option(None, help="SageMaker endpoint name (local control plane or AWS)."),
    variant: str = typer.Option(None, help="Target production variant of the endpoint."),
    function: str = typer.Option(None, help="Lambda function name (direct invocation)."),
    content_type: str = typer.Option(None, help="Override the Content-Type (default from the extension)."),
) -> None:
    """Send a JSON or CSV file to a Lambda, an HTTP URL or a SageMaker endpoint and print the answer."""
    from mlship.cli.common import console as new_console
    from mlship.errors import MlshipError

    targets = [t for t in (url, endpoint, function) if t]
    if len(targets) != 1:
        raise MlshipError("give exactly one of --url, --endpoint or --function")
    body = file.read_bytes()
    ctype = _content_type(file, content_type)
    if url:
        status, answer = invoke_url(url, body, ctype)
    elif endpoint:
        status, answer = invoke_endpoint(endpoint, body, ctype, variant)
    else:
        status, answer = invoke_function(function, body, ctype)
    new_console().print_json(json.dumps(answer))
    if status >= 400:
        message = answer.get("error", "request failed") if isinstance(answer, dict) else "request failed"
        raise MlshipError(f"HTTP {status}: {message}")


def gateway(
    port: int = typer.Option(8081, help="Port of the local control plane."),
    upstream: str = typer.Option(None, help="The moto server it fronts (default: $AWS_ENDPOINT_URL)."),
    time_scale: float = typer.Option(1.0, help="Multiply every simulated wait (0.01 for quick rehearsals)."),
) -> None:
    """Run the local control plane in the foreground (`mlship local up` starts one): endpoints that run,
    blue/green updates, invoke_endpoint and Lambda invoke answered by local processes."""
    import os

    from mlship.cli.common import fail
    from mlship.local.plane.server import main

    upstream = upstream or os.environ.get("AWS_ENDPOINT_URL")
    if not upstream:
        fail("no moto server: pass --upstream or set AWS_ENDPOINT_URL (mlship local up starts both)", code=2)
    main(["--upstream", upstream, "--port", str(port), "--time-scale", str(time_scale)])


def package(
    function: str = typer.Argument("predict", help="Function under functions/ to package."),
    force: bool = typer.Option(False, help="Rebuild even if the inputs did not change."),
) -> None:
    """Build a Lambda asset directory without Docker (build/lambda/FUNCTION) and print its sizes."""
    from mlship.deploy.lambda_asset import HANDLER, RUNTIME, asset_info, build_lambda_asset

    try:
        path = build_lambda_asset(function, force=force)
    except (FileNotFoundError, RuntimeError) as exc:
        from mlship.errors import MlshipError

        raise MlshipError(str(exc)) from None
    info = asset_info(function) or {}
    typer.echo(f"{path}: {info.get('unzipped_bytes', 0) / 1e6:.1f} MB unzipped, "
               f"{(info.get('zipped_bytes') or 0) / 1e6:.1f} MB zipped; runtime {RUNTIME}, handler {HANDLER}")


def register(app: typer.Typer) -> None:
    """Add this path's commands to the main app."""
    app.command("serve")(serve)
    app.command("invoke")(invoke)
    app.command("gateway")(gateway)
    app.command("package")(package)
