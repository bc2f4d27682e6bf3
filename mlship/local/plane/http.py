"""The request and answer shapes the control plane's services work on, and the pass-through to moto."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AwsRequest:
    """One HTTP request as a boto3 client sent it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def target(self) -> str:
        """The JSON-protocol operation (``X-Amz-Target``: ``SageMaker.UpdateEndpoint``), or ``""``."""
        return self.headers.get("x-amz-target", "")

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (``{}`` when empty)."""
        if not self.body:
            return {}
        loaded = json.loads(self.body)
        if not isinstance(loaded, dict):
            raise ValueError("the request body is not a JSON object")
        return loaded

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class AwsResponse:
    """An answer in the service's wire format."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200, **headers: str) -> AwsResponse:
        body = json.dumps(document, default=str).encode()
        return cls(status, body, {"Content-Type": "application/x-amz-json-1.1", **headers})

    @classmethod
    def error(cls, status: int, code: str, message: str, *, json_protocol: bool = True) -> AwsResponse:
        """A service error as botocore parses it (``__type`` for JSON protocols, ``x-amzn-ErrorType`` for REST)."""
        document = {"__type": code, "message": message, "Message": message}
        return cls(status, json.dumps(document).encode(),
                   {"Content-Type": "application/x-amz-json-1.1" if json_protocol else "application/json",
                    "x-amzn-ErrorType": code})


class Service:
    """A service the plane answers itself; :meth:`handle` returns ``None`` to pass a call to moto."""

    def handle(self, request: AwsRequest) -> AwsResponse | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the service started (local processes, threads)."""


def forward(upstream: str, request: AwsRequest, timeout: float = 120.0) -> AwsResponse:
    """Send ``request`` unchanged to ``upstream`` (the moto server) and return its answer."""
    parts = urllib.parse.urlsplit(upstream)
    query = urllib.parse.urlencode([(k, v) for k, values in request.query.items() for v in values])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        headers["host"] = parts.netloc
        conn.request(request.method, request.path + (f"?{query}" if query else ""), body=request.body,
                     headers=headers)
        resp = conn.getresponse()
        return AwsResponse(resp.status, resp.read(),
                           {k: v for k, v in resp.getheaders()
                            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server",
                                                 "date")})
    finally:
        conn.close()
