"""Load-test targets: an HTTP URL, ``endpoint:NAME`` (SageMaker) or ``lambda:NAME[:ALIAS]``.

Every target answers one request as an *outcome* string (``ok``, ``status:503``, ``timeout``,
``error:<kind>``) and never raises: a load test records failures, it does not stop on them.
URL targets are refused unless they are on loopback (``mlship serve``, the local control plane)
or an https AWS front door (a Lambda Function URL or an API Gateway URL): a load test is a
deliberate flood and must not be pointed at a third party by a typo.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlship.loadtest.errors import BadInput

AWS_HTTPS_HOSTS = (re.compile(r"^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$"),
                   re.compile(r"^[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com$"))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,139}$")


class Target(Protocol):
    """What the scheduler drives: one request in, one outcome out."""

    kind: str
    label: str

    async def start(self, max_outstanding: int, timeout: float) -> None: ...

    async def send(self, body: bytes, content_type: str) -> str: ...

    async def close(self) -> None: ...


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_target(text: str) -> Target:
    """``http(s)://…``, ``endpoint:NAME`` or ``lambda:NAME[:ALIAS]``; anything else is refused."""
    text = (text or "").strip()
    if text.startswith("endpoint:"):
        return EndpointTarget(_checked_name(text.removeprefix("endpoint:"), "endpoint"))
    if text.startswith("lambda:"):
        name, _, qualifier = text.removeprefix("lambda:").partition(":")
        return LambdaTarget(_checked_name(name, "function"), _checked_name(qualifier, "alias") if qualifier else None)
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # a bad port raises here, not later in the client
    except ValueError as exc:
        raise BadInput(f"target {text!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"target {text!r} is not a URL, endpoint:NAME or lambda:NAME[:ALIAS]")
    host = parts.hostname
    if not is_loopback(host) and not (parts.scheme == "https" and any(p.match(host) for p in AWS_HTTPS_HOSTS)):
        raise BadInput(f"refusing to load-test {host}: URL targets must be on loopback (mlship serve, the local "
                       "control plane) or an https Lambda Function URL / API Gateway URL")
    path = parts.path if parts.path not in ("", "/") or not is_loopback(host) else "/invocations"
    return HttpTarget(urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")))


def _checked_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise BadInput(f"bad {what} name {name!r}")
    return name


@dataclass
class HttpTarget:
    """POST to a URL through one aiohttp session (keep-alive, one connection per outstanding request)."""

    url: str
    kind: str = "url"
    session: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.url

    async def start(self, max_outstanding: int, timeout: float) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=max_outstanding, limit_per_host=max_outstanding)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))

    async def send(self, body: bytes, content_type: str) -> str:
        import aiohttp

        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": content_type}) as resp:
                await resp.read()
                return "ok" if resp.status < 400 else f"status:{resp.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectorError:
            return "error:connect"
        except aiohttp.ClientError as exc:
            return f"error:{type(exc).__name__}"

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class _BotoTarget:
    """boto3 is blocking: calls run in a thread pool sized for the rate, with a matching connection pool."""

    kind = "aws"
    service = ""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.client: Any = None
        self.timeout = 10.0
        self.retries = 0  # botocore's own retries (standard mode): counted, since they hide throttling

    async def start(self, max_outstanding: int, timeout: float) -> None:
        from mlship.aws.clients import client

        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=max_outstanding, thread_name_prefix="mlship-loadtest")
        self.client = client(self.service, max_pool_connections=max_outstanding, read_timeout=timeout,
                             connect_timeout=min(timeout, 5.0))

    async def send(self, body: bytes, content_type: str) -> str:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.pool, self._call, body, content_type),
                                          self.timeout)
        except TimeoutError:
            return "timeout"

    def _call(self, body: bytes, content_type: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        try:
            resp = self._invoke(body, content_type)
        except (ReadTimeoutError, ConnectTimeoutError):
            return "timeout"
        except ClientError as exc:
            return self._client_error(exc)
        except BotoCoreError as exc:
            return f"error:{type(exc).__name__}"
        self.retries += int(resp.get("ResponseMetadata", {}).get("RetryAttempts") or 0)
        return self._outcome(resp)

    def _client_error(self, exc: Any) -> str:
        status = exc.response.get("OriginalStatusCode") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode")
        return f"status:{status}" if status else f"error:{exc.response.get('Error', {}).get('Code', 'client')}"

    def _invoke(self, body: bytes, content_type: str) -> dict[str, Any]:
        raise NotImplementedError

    def _outcome(self, resp: dict[str, Any]) -> str:
        return "ok"

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class EndpointTarget(_BotoTarget):
    """``sagemaker-runtime invoke_endpoint``; a model's own 4xx/5xx comes back as ``ModelError``."""

    service = "sagemaker-runtime"

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.label = f"endpoint:{name}"

    def _invoke(self, body: bytes, content_type: str) -> dict[str, Any]:
        resp = self.client.invoke_endpoint(EndpointName=self.name, ContentType=content_type,
                                           Accept="application/json", Body=body)
        resp["Body"].read()
        return resp


class LambdaTarget(_BotoTarget):
    """``lambda invoke`` with the prediction Lambda's direct-invocation envelope."""

    service = "lambda"

    def __init__(self, name: str, qualifier: str | None = None):
        super().__init__()
        self.name, self.qualifier = name, qualifier
        self.label = f"lambda:{name}" + (f":{qualifier}" if qualifier else "")

    def _invoke(self, body: bytes, content_type: str) -> dict[str, Any]:
        payload = json.dumps({"body": body.decode("utf-8"), "contentType": content_type,
                              "isBase64Encoded": False}).encode()
        args: dict[str, Any] = {"FunctionName": self.name, "Payload": payload}
        if self.qualifier:
            args["Qualifier"] = self.qualifier
        resp = self.client.invoke(**args)
        resp["_payload"] = resp["Payload"].read()
        return resp

    def _outcome(self, resp: dict[str, Any]) -> str:
        if resp.get("FunctionError"):
            return "error:function"
        try:
            answer = json.loads(resp["_payload"])
        except ValueError:
            return "error:not_json"
        status = int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200
        return "ok" if status < 400 else f"status:{status}"

    def memory_mb(self) -> int | None:
        """The function's configured memory (for the cost estimate), when it can be read."""
        try:
            args = {"FunctionName": self.name, **({"Qualifier": self.qualifier} if self.qualifier else {})}
            return int(self.client.get_function_configuration(**args)["MemorySize"])
        except Exception:  # the estimate is optional: no permission or no such call locally
            return None
