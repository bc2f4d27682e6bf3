"""Resumable HTTP(S) downloads (standard library only).

A partial file ``<dest>.part`` survives crashes and dropped connections; the next attempt
asks for the rest with a ``Range`` header. A server that ignores ``Range`` (status 200)
restarts the file from zero.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from mlship.errors import MlshipError

CHUNK = 1 << 16


class DownloadError(MlshipError):
    """A download failed or ended early; the partial file is kept for a resume."""

    kind = "download"


def download(url: str, dest: str | Path, *, timeout: float = 30.0, expected_size: int | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` when present; return ``dest``."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have == expected_size:
        os.replace(part, dest)
        return dest
    headers = {"User-Agent": "mlship-edge-agent"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) URL from a signed job
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and (expected_size is None or have == expected_size):
            os.replace(part, dest)  # the partial file was already complete
            return dest
        raise DownloadError(f"download of {_short(url)} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {_short(url)} failed: {exc}") from None
    with resp:
        if resp.status == 206:
            mode, total = "ab", _range_total(resp.headers.get("Content-Range"))
        else:
            mode, have = "wb", 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        total = total if total is not None else expected_size
        written = have
        try:
            with open(part, mode) as fh:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    written += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, ValueError) as exc:  # connection reset, IncompleteRead
            raise DownloadError(
                f"download of {_short(url)} interrupted after {written} bytes "
                f"({exc}); the partial file is kept for a resume"
            ) from None
    if total is not None and written < total:
        raise DownloadError(
            f"download of {_short(url)} truncated: got {written} of {total} bytes; "
            "the partial file is kept for a resume"
        )
    os.replace(part, dest)
    return dest


def _range_total(value: str | None) -> int | None:
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else None


def _short(url: str) -> str:
    return url.split("?", 1)[0]
