"""Where a run's output lives and how it becomes visible: staging, atomic commit, S3 staging.

Layout of an output root ``OUT`` (local directory or ``s3://bucket/prefix``)::

    OUT/run_id=ID/part-*.parquet          scored rows (Spark readers of OUT see these)
    OUT/run_id=ID/_quarantine/*.parquet   rows that failed validation, with the reason
    OUT/run_id=ID/_summary.json           the run summary (counts, model, durations, drift)
    OUT/run_id=ID/_SUCCESS                written last
    OUT/_staging/ID-<attempt>/            work in progress (hidden: names starting with '_')

Spark and pyarrow readers skip names that start with ``_`` or ``.``, so staging and quarantine
stay invisible to a reader of ``OUT``. Locally a run becomes visible with one ``rename`` (or
an atomic ``renameat2(RENAME_EXCHANGE)`` when replacing a previous attempt of the same id).
S3 has no rename: see :func:`publish_s3` for what is and is not atomic there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

STAGING = "_staging"
QUARANTINE = "_quarantine"
SUMMARY = "_summary.json"
SUCCESS = "_SUCCESS"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class BatchError(MlshipError):
    """A batch run cannot start or cannot commit (bad arguments, input, reconciliation)."""

    kind = "batch"


def run_dir_name(run_id: str) -> str:
    return f"run_id={run_id}"


def is_s3(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """Bucket and key (without surrounding slashes) of an ``s3://`` URI, as a BatchError when malformed."""
    from mlship.aws.s3 import parse_s3_uri
    from mlship.errors import BundleError

    try:
        bucket, key = parse_s3_uri(uri)
    except BundleError as exc:
        raise BatchError(str(exc)) from None
    return bucket, key.strip("/")


def visible_files(root: str | Path) -> list[Path]:
    """Files a Spark/pyarrow reader of ``root`` would see (no part of the path starts with _ or .)."""
    root = Path(root)
    if not root.exists():
        return []
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).parts
        if path.is_file() and not any(p.startswith(("_", ".")) for p in rel):
            found.append(path)
    return sorted(found)


# ---------------------------------------------------------------------------- local staging/commit
@contextmanager
def run_lock(output_root: Path, run_id: str) -> Iterator[None]:
    """Exclusive lock per (output, run id): two concurrent runs of one id would race on the commit."""
    lock_dir = output_root / STAGING
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{run_id}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError(f"run {run_id!r} is already running against {output_root}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def new_staging(output_root: Path, run_id: str) -> Path:
    """A fresh staging directory for this attempt, after removing leftovers of killed attempts."""
    base = output_root / STAGING
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(f"{run_id}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    staging = base / f"{run_id}-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def assemble_run(staging: Path, data_dir: Path, summary: dict[str, Any], status_col: str = "status") -> Path:
    """Turn Spark's ``status=...`` partitions into the run directory layout, inside staging."""
    run = staging / "run"
    scored = data_dir / f"{status_col}=scored"
    quarantined = data_dir / f"{status_col}=quarantined"
    if scored.is_dir():
        os.rename(scored, run)
    else:
        run.mkdir()
    if quarantined.is_dir():
        os.rename(quarantined, run / QUARANTINE)
    for crc in run.rglob(".*.crc"):  # Hadoop checksum side files: noise for non-Spark readers
        crc.unlink()
    (run / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (run / SUCCESS).write_text("")
    return run


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def commit_local(run: Path, output_root: Path, run_id: str) -> tuple[Path, bool]:
    """Make the assembled run visible at ``OUT/run_id=ID``; return (path, replaced_previous).

    A new run id appears with one rename. An existing one is swapped atomically (renameat2
    exchange), so a reader sees either the old or the new run, never a mix; where exchange is
    not supported the old directory is moved aside first (readers briefly see no run, never a
    partial one).
    """
    target = output_root / run_dir_name(run_id)
    if not target.exists():
        os.rename(run, target)
        return target, False
    if _exchange(run, target):
        shutil.rmtree(run, ignore_errors=True)  # ``run`` now holds the previous attempt
        return target, True
    aside = run.with_name("previous")
    os.rename(target, aside)
    os.rename(run, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target, True


# ---------------------------------------------------------------------------- S3 staging (local runs)
def download_s3(uri: str, dest: Path) -> Path:
    """Download an s3:// object or every object under a prefix into ``dest``; return the local path."""
    from mlship.aws.clients import client

    bucket, key = split_s3(uri)
    s3 = client("s3")
    dest.mkdir(parents=True, exist_ok=True)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        objects += [o["Key"] for o in page.get("Contents", [])]
    exact = [k for k in objects if k == key]
    if exact:
        local = dest / Path(key).name
        s3.download_file(bucket, key, str(local))
        return local
    prefix = key + "/" if key else ""
    objects = [k for k in objects if k.startswith(prefix) and not k.endswith("/")]
    if not objects:
        raise BatchError(f"no input found at {uri}")
    for k in objects:
        local = dest / k[len(prefix):]
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, k, str(local))
    return dest


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def s3_staging_prefix(output_uri: str, run_id: str) -> str:
    """A fresh hidden staging prefix ``OUT/_staging/ID-<attempt>/`` (an ``s3://`` URI)."""
    return f"{output_uri.rstrip('/')}/{STAGING}/{run_id}-{uuid.uuid4().hex[:12]}/"


def upload_run(run: Path, staging_uri: str) -> dict[str, str]:
    """Upload an assembled local run directory under the staging prefix; return {relative path: key}."""
    from mlship.aws.clients import client

    bucket, prefix = split_s3(staging_uri)
    s3 = client("s3")
    keys = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run).as_posix()
        keys[rel] = f"{prefix}/{rel}"
        s3.upload_file(str(path), bucket, keys[rel])
    return keys


def staged_keys(data_uri: str, status_col: str = "status") -> dict[str, str]:
    """Map Spark's ``status=...`` output under an s3 staging prefix to run-relative paths."""
    from mlship.aws.clients import client

    bucket, prefix = split_s3(data_uri)
    mapping = {}
    for key in _list_keys(client("s3"), bucket, prefix + "/"):
        rel = key[len(prefix) + 1:]
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".parquet") or name.startswith(("_", ".")):
            continue
        if rel.startswith(f"{status_col}=scored/"):
            mapping[rel.split("/", 1)[1]] = key
        elif rel.startswith(f"{status_col}=quarantined/"):
            mapping[f"{QUARANTINE}/{rel.split('/', 1)[1]}"] = key
    return mapping


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def publish_s3(sources: dict[str, str], output_uri: str, run_id: str, staging_uri: str,
               summary: dict[str, Any] | None = None) -> tuple[str, bool]:
    """Publish staged objects (``{run-relative path: staged key}``) as ``OUT/run_id=ID/``.

    Order: data files are copied from the hidden staging prefix into the run prefix (new names:
    Spark part files carry a per-write uuid), then ``_summary.json`` and ``_SUCCESS`` are
    written last, then the previous attempt's files and the staging prefix are deleted. A run
    killed before the copy leaves nothing visible. S3 has no atomic rename: between the copy
    and the delete a plain listing of the run prefix shows both attempts' files. Readers that
    need an atomic view read the file list in ``_summary.json`` (``output.files``), which
    always names one complete attempt. Returns (run URI, whether a previous attempt was replaced).
    """
    from mlship.aws.clients import client

    bucket, root = split_s3(output_uri)
    s3 = client("s3")
    run_prefix = f"{root}/{run_dir_name(run_id)}/" if root else f"{run_dir_name(run_id)}/"
    previous = set(_list_keys(s3, bucket, run_prefix))
    last = [SUMMARY, SUCCESS]
    ordered = [r for r in sources if r not in last] + [r for r in last if r in sources]
    for rel in ordered:
        s3.copy_object(Bucket=bucket, Key=run_prefix + rel,
                       CopySource={"Bucket": bucket, "Key": sources[rel]})
    written = {run_prefix + r for r in sources}
    if summary is not None and SUMMARY not in sources:
        s3.put_object(Bucket=bucket, Key=run_prefix + SUMMARY,
                      Body=json.dumps(summary, indent=2, default=str).encode())
        written.add(run_prefix + SUMMARY)
    if SUCCESS not in sources:
        s3.put_object(Bucket=bucket, Key=run_prefix + SUCCESS, Body=b"")
        written.add(run_prefix + SUCCESS)
    _delete_keys(s3, bucket, sorted(previous - written))
    staging_bucket, staging_prefix = split_s3(staging_uri)
    _delete_keys(s3, staging_bucket, _list_keys(s3, staging_bucket, staging_prefix + "/"))
    return f"s3://{bucket}/{run_prefix}", bool(previous)
