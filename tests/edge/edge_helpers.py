"""Helpers shared by the edge tests (imported as a top-level module: pytest puts this dir on sys.path)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def repack(
    package: Path,
    out: Path,
    *,
    version: str | None = None,
    key: Any = None,
    mutate: Callable[[Path], None] | None = None,
    sign: bool = True,
    sign_after: bool = False,
) -> Path:
    """Copy a package with a new version (re-signed with ``key``) and/or a mutation (for tampering;
    with ``sign_after`` the mutation is signed too)."""
    from mlship.runtime.archive import pack_bundle
    from mlship.runtime.bundle import MANIFEST, sign_bundle
    from mlship.runtime.signing import load_private_key

    work = out.with_name(out.name + ".dir")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(package) as tar:
        tar.extractall(work, filter="data")
    if version is not None:
        manifest = json.loads((work / MANIFEST).read_text())
        manifest["version"] = version
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    private = load_private_key(key) if isinstance(key, (str, Path)) else key
    if sign and key is not None and not sign_after:
        sign_bundle(work, private)
    if mutate is not None:
        mutate(work)
    if sign_after and key is not None:  # a mutation the signer vouches for (e.g. a latent model bug)
        (work / "signature.json").unlink(missing_ok=True)
        sign_bundle(work, private)
    pack_bundle(work, out)
    shutil.rmtree(work)
    return out


def nan_package(package: Path, out: Path, key: Any) -> Path:
    """A signed copy of an fp32 edge package whose model emits NaN for monthly_charges > 1000.

    Its golden examples stay below the threshold, so it verifies, passes its smoke test and health
    check, and fails only on the requests that cross it: a latent model-side bug.
    """
    from nonfinite import inject_nan

    from mlship.runtime.bundle import MANIFEST, hash_files, write_manifest

    def mutate(work: Path) -> None:
        manifest = json.loads((work / MANIFEST).read_text())
        inject_nan(work / manifest["model"]["file"])
        manifest["files"] = hash_files(work)
        if "sizes" in manifest:  # recorded sizes must follow the changed model file
            manifest["sizes"] = {rel: (work / rel).stat().st_size for rel in manifest["files"]}
        write_manifest(work, manifest)

    return repack(package, out, key=key, mutate=mutate, sign_after=True)


class Http:
    """Raw HTTP/1.1 requests over a real socket (so malformed framing can be sent as-is)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port, self.timeout = port, timeout

    def raw(self, data: bytes, *, half_close: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Send ``data`` verbatim; return (status, headers, body) of the answer."""
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:  # the server closed after answering without reading all
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        return parse_response(b"".join(chunks))

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
        *, length: str | None = "auto", half_close: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        """A request with ``headers``; ``length`` is the Content-Length text ("auto", or None for none);
        ``half_close`` ends the client's side after sending (a short body then ends, not stalls)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if length == "auto":
            lines.append(f"Content-Length: {len(body)}")
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        return self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, half_close=half_close)

    def post_json(self, doc: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request(
            "POST", "/predict", json.dumps(doc).encode(), {"Content-Type": "application/json", **headers}
        )
        return status, json.loads(body)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split a raw HTTP answer; raise AssertionError when it is not one (e.g. a dropped connection)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP answer (connection dropped?): {data[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    assert parts[0].startswith("HTTP/") and len(parts) >= 2, status_line
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"]), (headers, len(body))
    return int(parts[1]), headers, body
