"""Lambda ``Invoke`` run for real: one warm local process per function version, alias weights honoured.

moto records functions, versions and aliases but runs nothing without Docker, and stores an
alias' ``RoutingConfig`` without routing by it. This service answers
``POST /2015-03-31/functions/{name}/invocations`` itself (name, ``name:qualifier`` or an ARN;
``?Qualifier=``) and passes every other Lambda call to moto:

* the version is picked per invocation by the alias' weights and reported in
  ``X-Amz-Executed-Version``; a handler exception, a crash or a timeout is a 200 with
  ``X-Amz-Function-Error: Unhandled`` and Lambda's error document; an unknown function, version or
  alias is moto's ``ResourceNotFoundException`` (404), as Lambda answers;
* the process (:mod:`mlship.local.plane.lambda_runtime`) gets the version's environment
  variables, the local credentials and region, ``AWS_ENDPOINT_URL`` = moto and the plane for
  the services it runs (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, ``..._LAMBDA``, ...), and
  ``AWS_LAMBDA_FUNCTION_NAME`` / ``_VERSION``;
* code: the deployed code when the function was created or updated through the plane
  (``ZipFile``, or ``S3Bucket``/``S3Key`` read from moto's S3 at that moment, as Lambda copies it),
  found again by the version's ``CodeSha256``; otherwise the repository's code: a dotted handler
  naming a module of the repository (``functions.predict.handler.handler``), or ``handler.handler``
  with the function named ``<dir>`` or ``...-<dir>`` for ``functions/<dir>/handler.py``;
* rehearsal faults, as for endpoint fleets: a version whose variables carry ``MLSHIP_LOCAL_FAULT``
  (``mlship rollout lambda --fault``) answers that share of invocations with a function error
  (``errors=0.2``), is delayed (``latency=400ms``) or crashes (``crash``); the handler never sees it;
* the function's log lines go to moto's CloudWatch Logs after each invocation, as Lambda sends
  them: group ``/aws/lambda/<name>``, the process' stream, framed by ``START``/``END``/``REPORT``
  lines; so a subscription filter on the group (the predict function's capture lines to Firehose
  and S3) runs locally too;
* each invocation records ``Invocations``, ``Errors`` and ``Duration`` (ms) in ``AWS/Lambda``
  with the dimension sets Lambda publishes: ``FunctionName``; ``FunctionName`` + ``Resource``
  (``name:qualifier``); and for an alias also ``ExecutedVersion``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
import uuid
import zipfile
from pathlib import Path
from typing import Any

from mlship.local.plane.context import PlaneContext
from mlship.local.plane.fleet import FAULT_VARIABLE, Fault, FaultError
from mlship.local.plane.http import AwsRequest, AwsResponse, Service, forward
from mlship.local.plane.lambda_runtime import Invocation, Worker, error_payload

log = logging.getLogger("mlship.local.plane.lambda")
REPO = Path(__file__).resolve().parents[3]
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/?$")
_CODE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/code/?$")
_ARN = re.compile(r"^(?:arn:[^:]+:lambda:[^:]+:)?(?:\d{12}:)?function:(?P<rest>.+)$")
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "MLSHIP_CACHE_DIR")
_PLANE_SERVICES = ("LAMBDA", "SAGEMAKER", "SAGEMAKER_RUNTIME", "CODEDEPLOY")


class FunctionCodeMissing(Exception):
    """Neither deployed code nor a repository directory for a function's handler."""


def split_function(raw: str, qualifier: str | None) -> tuple[str, str | None]:
    """``(name, qualifier)`` from a name, ``name:qualifier``, a partial or a full ARN."""
    match = _ARN.match(raw)
    rest = match.group("rest") if match else raw
    name, _, embedded = rest.partition(":")
    return name, qualifier or embedded or None


def _code_root() -> Path:
    """Where ``functions/`` is: the checkout, else the installed package's shipped copy."""
    from mlship.resources import MissingResource, data_path

    try:
        return data_path("functions").parent
    except MissingResource:
        return REPO


def repo_code(handler: str, function_name: str, repo: Path | None = None) -> tuple[Path, str]:
    """The directory and handler to run when the plane never saw the function's code (the checkout's
    or the installed package's ``functions/``)."""
    repo = repo or _code_root()
    module, _, _ = handler.rpartition(".")
    if "." in module and (repo / (module.replace(".", "/") + ".py")).is_file():
        return repo, handler
    functions = repo / "functions"
    if module and functions.is_dir():
        for child in sorted(functions.iterdir()):
            named = function_name == child.name or function_name.endswith(f"-{child.name}")
            if named and (child / f"{module}.py").is_file():
                return child, handler
    raise FunctionCodeMissing(
        f"the plane has no code for function {function_name} (create it through the plane with ZipFile or "
        f"S3Bucket/S3Key) and the repository has none for handler {handler!r}: expected a module path such "
        f"as functions.predict.handler.handler, or functions/<dir>/{module or 'handler'}.py with the function "
        "named <dir> or ...-<dir>")


class LogForwarder:
    """Puts a function's log lines into moto's CloudWatch Logs (creating the group and stream once)."""

    MAX_EVENTS = 10_000  # PutLogEvents takes at most 10,000 events (and 1 MB) per call
    MAX_BATCH_BYTES = 900_000

    def __init__(self, context: PlaneContext):
        self.logs = context.client("logs")
        self._ready: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def forward(self, function_name: str, stream: str, lines: list[str]) -> None:
        """Send ``lines`` (one event each, stamped now); a failure is logged, never raised."""
        group = f"/aws/lambda/{function_name}"
        try:
            self._ensure(group, stream)
            stamp = int(time.time() * 1000)
            for batch in _batches([line for line in lines if line], self.MAX_EVENTS, self.MAX_BATCH_BYTES):
                self.logs.put_log_events(logGroupName=group, logStreamName=stream,
                                         logEvents=[{"timestamp": stamp, "message": line} for line in batch])
        except Exception:  # noqa: BLE001 - logs are best effort: they never fail an invocation
            log.info("could not forward the logs of %s to CloudWatch Logs", function_name, exc_info=True)

    def _ensure(self, group: str, stream: str) -> None:
        with self._lock:
            if (group, stream) in self._ready:
                return
            for call, kwargs in ((self.logs.create_log_group, {"logGroupName": group}),
                                 (self.logs.create_log_stream, {"logGroupName": group, "logStreamName": stream})):
                with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                    call(**kwargs)
            self._ready.add((group, stream))


def _batches(lines: list[str], max_events: int, max_bytes: int) -> list[list[str]]:
    """``lines`` cut into PutLogEvents-sized batches (26 bytes of overhead per event, as AWS counts)."""
    batches: list[list[str]] = [[]]
    size = 0
    for line in lines:
        cost = len(line.encode()) + 26
        if batches[-1] and (len(batches[-1]) >= max_events or size + cost > max_bytes):
            batches.append([])
            size = 0
        batches[-1].append(line)
        size += cost
    return [batch for batch in batches if batch]


def invoked_arn(config: dict[str, Any], qualifier: str | None) -> str:
    """The ARN the caller invoked: the function's, with the alias or version it named (Lambda's
    ``context.invoked_function_arn``)."""
    base = ":".join(str(config["FunctionArn"]).split(":")[:7])
    return f"{base}:{qualifier}" if qualifier else base


def invocation_log_lines(answer: Invocation, request_id: str, version: str) -> list[str]:
    """What Lambda puts in the log stream for one invocation: START, the function's lines, END, REPORT."""
    text = answer.log.decode("utf-8", "replace")
    return [f"START RequestId: {request_id} Version: {version}", *text.splitlines(),
            f"END RequestId: {request_id}",
            f"REPORT RequestId: {request_id}\tDuration: {answer.duration_ms:.2f} ms"]


class CodeStore:
    """Deployed code by ``CodeSha256``: the zip as Lambda stored it, extracted once."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()

    @staticmethod
    def _id(sha256_b64: str) -> str:
        return base64.b64decode(sha256_b64).hex() if sha256_b64 else ""

    def save(self, zip_bytes: bytes) -> str:
        """Store a zip; return its ``CodeSha256`` (base64 of the sha256, as Lambda reports it)."""
        digest = hashlib.sha256(zip_bytes).digest()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f"{digest.hex()}.zip").write_bytes(zip_bytes)
        return base64.b64encode(digest).decode()

    def directory(self, sha256_b64: str) -> Path | None:
        """The extracted code for ``sha256_b64``, or ``None`` when the plane never saw it."""
        ident = self._id(sha256_b64)
        archive = self.root / f"{ident}.zip"
        if not ident or not archive.is_file():
            return None
        target = self.root / ident
        with self._lock:
            if not target.is_dir():
                partial = self.root / f"{ident}.partial-{uuid.uuid4().hex}"
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(partial)  # noqa: S202 - a zip this plane was given to deploy
                partial.rename(target)
        return target


def _fault(config: dict[str, Any]) -> Fault:
    """The rehearsal fault a version carries in ``MLSHIP_LOCAL_FAULT`` (none when it does not parse)."""
    text = ((config.get("Environment") or {}).get("Variables") or {}).get(FAULT_VARIABLE)
    try:
        return Fault.parse(text)
    except FaultError:
        log.warning("ignoring %s=%r of %s", FAULT_VARIABLE, text, config.get("FunctionArn"))
        return Fault()


def _client_error(exc: Exception) -> AwsResponse:
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
    return AwsResponse.error(status, error.get("Code", "ServiceException"), error.get("Message", str(exc)),
                             json_protocol=False)


class LambdaService(Service):
    """Runs ``Invoke`` locally; records deployed code on its way to moto; passes everything else."""

    def __init__(self, context: PlaneContext):
        self.context = context
        self.lam = context.client("lambda")
        self.code = CodeStore(context.log_dir / "lambda-code")
        self.logs = LogForwarder(context)
        self._workers: dict[tuple[str, ...], Worker] = {}
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}  # published versions never change
        self._lock = threading.Lock()

    def handle(self, request: AwsRequest) -> AwsResponse | None:
        invoke = _INVOKE.match(request.path)
        if invoke and request.method == "POST":
            return self.invoke(request, urllib.parse.unquote(invoke.group("name")))
        if request.method == "POST" and request.path.rstrip("/") == "/2015-03-31/functions":
            return self._with_code(request, "Code")
        if request.method == "PUT" and _CODE.match(request.path):
            return self._with_code(request, None)
        deleted = _FUNCTION.match(request.path)
        if request.method == "DELETE" and deleted:
            self._forget(split_function(urllib.parse.unquote(deleted.group("name")), None)[0])
        return None

    def _forget(self, name: str) -> None:
        """A deleted function: its versions' configurations and processes go (a new one may reuse the name)."""
        with self._lock:
            for key in [k for k in self._configs if k[0] == name]:
                self._configs.pop(key)
            stale = [k for k in self._workers if k[0].split(":")[6] == name]
            workers = [self._workers.pop(k) for k in stale]
        for worker in workers:
            worker.close()

    # ------------------------------------------------------------------ deployed code
    def _with_code(self, request: AwsRequest, field: str | None) -> AwsResponse:
        """Keep the zip of a CreateFunction (``Code``) / UpdateFunctionCode (the body), then let moto answer."""
        try:
            body = request.json()
            code = (body.get(field) or {}) if field else body
            if code.get("ZipFile"):
                self.code.save(base64.b64decode(code["ZipFile"]))
            elif code.get("S3Bucket") and code.get("S3Key"):
                extra = {"VersionId": code["S3ObjectVersion"]} if code.get("S3ObjectVersion") else {}
                body = self.context.client("s3").get_object(Bucket=code["S3Bucket"], Key=code["S3Key"], **extra)
                self.code.save(body["Body"].read())
        except Exception:  # noqa: BLE001 - moto decides whether the request is valid; the code is optional
            log.info("could not keep the code of %s %s", request.method, request.path, exc_info=True)
        return forward(self.context.upstream, request)

    def _code_dir(self, config: dict[str, Any]) -> tuple[Path, str]:
        handler = config.get("Handler") or "handler.handler"
        deployed = self.code.directory(config.get("CodeSha256", ""))
        if deployed is not None:
            return deployed, handler
        return repo_code(handler, config["FunctionName"])

    # ------------------------------------------------------------------ invoke
    def _resolve(self, name: str, qualifier: str | None) -> tuple[dict[str, Any], str | None]:
        """The configuration of the version to run, and the alias it was picked by (if any)."""
        alias = None
        version = qualifier or "$LATEST"
        if qualifier and qualifier != "$LATEST" and not qualifier.isdigit():
            found = self.lam.get_alias(FunctionName=name, Name=qualifier)
            alias, version = qualifier, found["FunctionVersion"]
            for other, weight in (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}).items():
                if random.random() < float(weight):  # noqa: S311 - traffic splitting, not security
                    version = other
        key = (name, version)
        if version != "$LATEST" and key in self._configs:
            return self._configs[key], alias
        config = self.lam.get_function_configuration(FunctionName=name, Qualifier=version)
        if version != "$LATEST":
            self._configs[key] = config
        return config, alias

    def invoke(self, request: AwsRequest, raw_name: str) -> AwsResponse:
        """Lambda ``Invoke`` (RequestResponse, Event or DryRun)."""
        from botocore.exceptions import ClientError

        name, qualifier = split_function(raw_name, request.query_value("Qualifier"))
        try:
            config, alias = self._resolve(name, qualifier)
        except ClientError as exc:
            return _client_error(exc)
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        version = config["Version"]
        if kind == "DryRun":
            return AwsResponse(204, b"", {"X-Amz-Executed-Version": version})
        request_id = str(uuid.uuid4())
        context = request.headers.get("x-amz-client-context")
        if kind == "Event":
            threading.Thread(target=self._run, args=(config, alias, qualifier, request.body, request_id, context),
                             daemon=True, name=f"lambda-event-{request_id}").start()
            return AwsResponse(202, b"", {"X-Amz-Executed-Version": version, "x-amzn-RequestId": request_id})
        answer = self._run(config, alias, qualifier, request.body, request_id, context)
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": version,
                   "x-amzn-RequestId": request_id}
        if answer.function_error:
            headers["X-Amz-Function-Error"] = answer.function_error
        if request.headers.get("x-amz-log-type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(answer.log_tail).decode()
        return AwsResponse(200, answer.payload, headers)

    def _run(self, config: dict[str, Any], alias: str | None, qualifier: str | None, payload: bytes,
             request_id: str, client_context: str | None) -> Invocation:
        fault = _fault(config)
        if fault.crash:
            answer = Invocation(error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited "
                                              "with error: signal: killed (rehearsed crash, MLSHIP_LOCAL_FAULT)"),
                                "Unhandled")
        elif fault.error_rate and random.random() < fault.error_rate:  # noqa: S311 - a rehearsal's dice
            answer = Invocation(error_payload("MlshipLocalFault", "injected error (MLSHIP_LOCAL_FAULT)", request_id),
                                "Unhandled")
        else:
            answer = self._run_handler(config, payload, request_id, client_context, fault.latency_seconds,
                                       invoked_arn(config, qualifier))
        self._metrics(config, alias, qualifier, answer)
        return answer

    def _run_handler(self, config: dict[str, Any], payload: bytes, request_id: str, client_context: str | None,
                     delay: float, arn: str) -> Invocation:
        try:
            worker = self._worker(config)
        except FunctionCodeMissing as exc:
            return Invocation(error_payload("Runtime.ImportModuleError", str(exc), request_id), "Unhandled")
        if delay:
            time.sleep(delay)
        answer = worker.invoke(payload, request_id, client_context, arn)
        answer.duration_ms += delay * 1000.0
        self.logs.forward(config["FunctionName"], worker.log_stream,
                          invocation_log_lines(answer, request_id, config["Version"]))
        if not worker.alive:
            self._drop(worker)
        return answer

    # ------------------------------------------------------------------ workers
    def _worker(self, config: dict[str, Any]) -> Worker:
        key = (config["FunctionArn"], config["Version"], config.get("CodeSha256", ""),
               str(config.get("LastModified", "")), json.dumps(config.get("Environment"), sort_keys=True))
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.alive:
                return worker
            stale = [k for k in self._workers if k[:2] == key[:2]]  # an older $LATEST of the same function
            for old in stale:
                self._workers.pop(old).close()
            code_dir, handler = self._code_dir(config)
            worker = Worker(code_dir, handler, self._env(config, code_dir), self._log_path(config),
                            timeout_s=float(config.get("Timeout") or 3), function_arn=config["FunctionArn"],
                            memory_mb=int(config.get("MemorySize") or 128))
            self._workers[key] = worker
            log.info("started %s version %s (pid %s, code %s)", config["FunctionName"], config["Version"],
                     worker.process.pid, code_dir)
            return worker

    def _drop(self, worker: Worker) -> None:
        with self._lock:
            for key, value in list(self._workers.items()):
                if value is worker:
                    self._workers.pop(key)
        worker.close()

    def _log_path(self, config: dict[str, Any]) -> Path:
        version = config["Version"].replace("$", "")
        return self.context.log_dir / "lambda" / f"{config['FunctionName']}-{version}.log"

    def _env(self, config: dict[str, Any], code_dir: Path) -> dict[str, str]:
        """The process environment: the version's variables, then what Lambda itself sets."""
        name, version = config["FunctionName"], config["Version"]
        tmp = self.context.log_dir / "lambda-tmp" / f"{name}-{version.replace('$', '')}"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env.update({"PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp), "POWERTOOLS_TRACE_DISABLED": "1"})
        env.update({k: v for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()
                    if k != FAULT_VARIABLE})
        env.update({
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": self.context.region, "AWS_DEFAULT_REGION": self.context.region,
            "AWS_ENDPOINT_URL": self.context.upstream,
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize") or 128),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[{version}]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": config.get("Handler") or ""})
        for service in _PLANE_SERVICES:
            env[f"AWS_ENDPOINT_URL_{service}"] = self.context.url
        return env

    def _metrics(self, config: dict[str, Any], alias: str | None, qualifier: str | None,
                 answer: Invocation) -> None:
        store = self.context.metrics
        if store is None:
            return
        name = config["FunctionName"]
        dimension_sets: list[dict[str, str]] = [{"FunctionName": name}]
        if qualifier:
            dimension_sets.append({"FunctionName": name, "Resource": f"{name}:{qualifier}"})
        if alias:
            dimension_sets.append({"FunctionName": name, "Resource": f"{name}:{alias}",
                                   "ExecutedVersion": config["Version"]})
        for dims in dimension_sets:
            store.record("AWS/Lambda", "Invocations", dims, 1.0, "Count")
            store.record("AWS/Lambda", "Errors", dims, 1.0 if answer.function_error else 0.0, "Count")
            store.record("AWS/Lambda", "Duration", dims, answer.duration_ms, "Milliseconds")

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()


def zip_directory(directory: Path) -> bytes:
    """A Lambda zip of ``directory``'s files (flat at the root, no ``__pycache__``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()
