"""EMR Serverless: package the job, upload it, start a job run, follow it.

Artifacts under ``ARTIFACTS`` (an ``s3://bucket/prefix``), content-addressed so that a
resubmission reuses them::

    ARTIFACTS/batch/code-<sha12>/score.py                 the entry point
    ARTIFACTS/batch/code-<sha12>/mlship-batch-code.zip    mlship + batch sources (--py-files)
    ARTIFACTS/batch/deps-<sha12>/mlship-batch-deps.tar.gz third-party wheels unpacked (spark.archives)
    ARTIFACTS/batch/models/<sha12>.tar.gz                 a local bundle, uploaded when given
    ARTIFACTS/batch/code-<sha12>/monitor_window.py        the monitor's job (``monitor_artifacts``)

The deps archive is unpacked by Spark as ``./deps`` in the driver's and executors' working
directory and put on ``PYTHONPATH``. It is built with ``pip install --platform
manylinux_2_28_x86_64 --only-binary=:all: --python-version X.Y --target``: X.Y must match the
Python of the EMR application's image (see docs/batch.md).

All AWS calls go through :func:`mlship.aws.clients.client`. Against moto, job runs are recorded
(state SUCCESS at once) but nothing executes.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from mlship.batch.storage import BatchError, is_s3, split_s3

from mlship.resources import DATA_DIR, checkout_root, package_root
from mlship.runtime.hashing import sha256_file

BATCH_DIR = Path(__file__).resolve().parent  # batch/ in the checkout, mlship/batch/ when installed
CODE_ZIP = "mlship-batch-code.zip"
DEPS_ARCHIVE = "mlship-batch-deps.tar.gz"
ENTRY_POINT = "score.py"
DEFAULT_RELEASE = "emr-7.5.0"
DEFAULT_PYTHON_VERSION = "3.11"
# What Spark's Python workers and the driver need besides pyspark (which EMR provides).
WORKER_REQUIREMENTS = ("numpy>=2.0,<3", "onnxruntime==1.32.0", "cryptography>=44", "pandas>=2.3,<3",
                       "pyarrow>=25,<26", "scipy>=1.13", "boto3==1.43.117", "rich>=13")
MONITOR_ENTRY_POINT = "monitor_window.py"
# the monitor's job also renders the HTML report (mlship.stats.reports: jinja2)
MONITOR_REQUIREMENTS = (*WORKER_REQUIREMENTS, "Jinja2==3.1.6")
TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}


def build_code_zip(out_dir: Path) -> Path:
    """A deterministic zip of the ``mlship`` package with ``batch/`` as ``mlship/batch`` (sources only).

    The layout an installed wheel has: ``mlship.batch`` imports the same on EMR as here. From an
    installed mlship (a user's project) the installed package is zipped, without its shipped data.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / CODE_ZIP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, prefix in _code_sources():
            for path in sorted(source.rglob("*.py")):
                if "__pycache__" in path.parts or DATA_DIR in path.relative_to(source).parts[:1]:
                    continue
                name = f"{prefix}/{path.relative_to(source).as_posix()}"
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    target.write_bytes(buf.getvalue())
    return target


def _code_sources() -> list[tuple[Path, str]]:
    """(folder, prefix in the zip): the checkout's mlship/ and batch/, else the installed mlship/."""
    root = checkout_root()
    if root is not None:
        return [(root / "mlship", "mlship"), (root / "batch", "mlship/batch")]
    return [(package_root() / "mlship", "mlship")]


def build_deps_archive(out_dir: Path, python_version: str = DEFAULT_PYTHON_VERSION,
                       requirements: tuple[str, ...] = WORKER_REQUIREMENTS) -> Path:
    """Download manylinux wheels for the workers into a ``.tar.gz`` (cached by requirements)."""
    key = hashlib.sha256(f"{python_version}|{'|'.join(requirements)}".encode()).hexdigest()[:12]
    cached = out_dir / f"deps-{key}" / DEPS_ARCHIVE
    if cached.is_file():
        return cached
    target_dir = Path(tempfile.mkdtemp(prefix="mlship-deps-"))
    try:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target_dir),
               "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
               "--python-version", python_version, "--only-binary=:all:", "--implementation", "cp",
               *requirements]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
            raise BatchError(f"building the dependencies archive failed: {tail[0]}")
        for junk in list(target_dir.rglob("__pycache__")) + list(target_dir.rglob("tests")):
            shutil.rmtree(junk, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        # a unique temporary name: concurrent builds (pytest-xdist workers, CDK synth) must not share it
        handle, tmp_name = tempfile.mkstemp(prefix=cached.name + ".", suffix=".part", dir=cached.parent)
        os.close(handle)
        tmp = Path(tmp_name)
        try:
            with tarfile.open(tmp, "w:gz") as tar:
                for path in sorted(target_dir.iterdir()):
                    tar.add(path, arcname=path.name)
            tmp.replace(cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached
    finally:
        shutil.rmtree(target_dir, ignore_errors=True)


def _sha12(path: Path) -> str:
    return sha256_file(path)[:12]


def _upload(path: Path, uri: str) -> str:
    from mlship.aws.clients import client

    bucket, key = split_s3(uri)
    client("s3").upload_file(str(path), bucket, key)
    return uri


def ensure_application(name: str, release_label: str = DEFAULT_RELEASE) -> str:
    """The id of the EMR Serverless Spark application called ``name`` (created if missing)."""
    from mlship.aws.clients import client

    emr = client("emr-serverless")
    for page in emr.get_paginator("list_applications").paginate():
        for app in page.get("applications", []):
            if app.get("name") == name and app.get("state") not in ("TERMINATED", "TERMINATING"):
                return str(app["id"])
    created = emr.create_application(name=name, releaseLabel=release_label, type="SPARK")
    return str(created["applicationId"])


def submit(*, application_id: str, execution_role_arn: str, artifacts: str, model: str, input: str,
           output: str, run_id: str, fmt: str | None = None, id_column: str | None = None,
           deps_archive: str | None = None, build_deps: bool = False,
           python_version: str = DEFAULT_PYTHON_VERSION, python_executable: str | None = None,
           log_uri: str | None = None, extra_conf: dict[str, str] | None = None,
           work_dir: Path | None = None, drift: bool = True, explain: bool = False) -> dict[str, Any]:
    """Package and upload the job, then ``start_job_run``; return the run's identity and artifacts.

    ``deps_archive``: an existing ``s3://`` or local deps ``.tar.gz``; ``build_deps`` builds one
    with pip (needs PyPI); neither: the application's image must provide the dependencies.
    The client token is derived from the run id and arguments, so submitting the same run
    twice returns the same job run instead of starting a second one. ``drift`` and ``explain`` are
    the job's ``--no-drift`` / ``--explain`` (as ``mlship batch run`` takes them).
    """
    from mlship.aws.clients import client

    _check_job_uris(artifacts, input, output)
    root = artifacts.rstrip("/") + "/batch"
    work = work_dir or Path(tempfile.mkdtemp(prefix="mlship-submit-"))
    uploaded = upload_code(artifacts, BATCH_DIR / ENTRY_POINT, work, deps_archive=deps_archive,
                           build_deps=build_deps, python_version=python_version)
    model_uri = model
    if not (is_s3(model) or model.startswith("mlship://")):
        model_uri = uploaded["model"] = _upload_model(model, work, root)
    args = ["--model", model_uri, "--input", input, "--output", output, "--run-id", run_id,
            "--s3-mode", "direct", "--no-progress"]
    if fmt:
        args += ["--format", fmt]
    if id_column:
        args += ["--id-column", id_column]
    args += ([] if drift else ["--no-drift"]) + (["--explain"] if explain else [])
    params = spark_submit_parameters(uploaded["code"], uploaded.get("deps"), python_executable, extra_conf)
    token = hashlib.sha256("|".join([application_id, *args, params]).encode()).hexdigest()[:32]
    request: dict[str, Any] = {
        "applicationId": application_id, "executionRoleArn": execution_role_arn, "clientToken": token,
        "name": f"mlship-batch-{run_id}"[:256],
        "jobDriver": {"sparkSubmit": {"entryPoint": uploaded["entry_point"], "entryPointArguments": args,
                                      "sparkSubmitParameters": params}},
        "tags": {"mlship:run-id": run_id},
    }
    if log_uri:
        request["configurationOverrides"] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": log_uri}}}
    response = client("emr-serverless").start_job_run(**request)
    return {"application_id": application_id, "job_run_id": response["jobRunId"], "arn": response.get("arn"),
            "run_id": run_id, "artifacts": uploaded, "entry_point_arguments": args,
            "spark_submit_parameters": params}


def upload_code(artifacts: str, entry_point: Path, work: Path, *, deps_archive: str | None = None,
                build_deps: bool = False, python_version: str = DEFAULT_PYTHON_VERSION,
                requirements: tuple[str, ...] = WORKER_REQUIREMENTS) -> dict[str, str]:
    """Upload an entry point, the code zip and (given or built) the deps archive under
    ``ARTIFACTS/batch/`` (content-addressed); returns their URIs (``entry_point``, ``code``, ``deps``)."""
    root = artifacts.rstrip("/") + "/batch"
    code = build_code_zip(work / "code")
    code_key = f"{root}/code-{_sha12(code)}"
    uploaded = {"entry_point": _upload(entry_point, f"{code_key}/{entry_point.name}"),
                "code": _upload(code, f"{code_key}/{CODE_ZIP}")}
    if build_deps and not deps_archive:
        deps_archive = str(build_deps_archive(Path.home() / ".cache" / "mlship" / "emr", python_version,
                                              requirements))
    if deps_archive:
        uploaded["deps"] = _deps_uri(deps_archive, root)
    return uploaded


def monitor_artifacts(artifacts: str, *, deps_archive: str | None = None, build_deps: bool = False,
                      python_version: str = DEFAULT_PYTHON_VERSION, python_executable: str | None = None,
                      work_dir: Path | None = None) -> dict[str, Any]:
    """Upload the monitor's Spark job (``monitor_window.py``, the code, the deps with jinja2 for the
    HTML report) and return the monitor settings that submit it: ``SPARK_ENTRY_POINT`` and
    ``SPARK_SUBMIT_PARAMETERS``."""
    if not is_s3(artifacts):
        raise BatchError(f"--artifacts must be an s3:// URI, got {artifacts!r}")
    work = work_dir or Path(tempfile.mkdtemp(prefix="mlship-monitor-artifacts-"))
    uploaded = upload_code(artifacts, BATCH_DIR / MONITOR_ENTRY_POINT, work, deps_archive=deps_archive,
                           build_deps=build_deps, python_version=python_version, requirements=MONITOR_REQUIREMENTS)
    params = spark_submit_parameters(uploaded["code"], uploaded.get("deps"), python_executable)
    return {"artifacts": uploaded,
            "settings": {"SPARK_ENTRY_POINT": uploaded["entry_point"], "SPARK_SUBMIT_PARAMETERS": params}}


def _check_job_uris(artifacts: str, input: str, output: str) -> None:
    """EMR Serverless reads and writes S3 only: raise :class:`BatchError` for any other URI."""
    if not is_s3(artifacts):
        raise BatchError(f"--artifacts must be an s3:// URI, got {artifacts!r}")
    for label, uri in (("--input", input), ("--output", output)):
        if not is_s3(uri):
            raise BatchError(f"{label} must be an s3:// URI for EMR Serverless (got {uri!r}): "
                             "the job cannot read this machine's disk")


def _deps_uri(deps_archive: str, root: str) -> str:
    """The S3 URI of the dependencies archive, uploading a local one (content-addressed) first."""
    if is_s3(deps_archive):
        return deps_archive
    local = Path(deps_archive)
    if not local.is_file():
        raise BatchError(f"dependencies archive not found: {deps_archive}")
    return _upload(local, f"{root}/deps-{_sha12(local)}/{DEPS_ARCHIVE}")


def _upload_model(model: str, work: Path, root: str) -> str:
    """Pack a local bundle and upload it (content-addressed); return its S3 URI."""
    from mlship.runtime.archive import pack_bundle
    from mlship.runtime.sources import resolve_local

    packed = pack_bundle(resolve_local(model), work / "model.tar.gz")
    return _upload(packed, f"{root}/models/{_sha12(packed)}.tar.gz")


def spark_submit_parameters(code_uri: str, deps_uri: str | None = None, python_executable: str | None = None,
                            extra_conf: dict[str, str] | None = None) -> str:
    """The job's ``sparkSubmitParameters``: shipped code, the deps archive on PYTHONPATH, the Python
    to run (the same for ``mlship batch submit`` and the Batch stack's schedule)."""
    conf = {"spark.submit.pyFiles": code_uri}
    if deps_uri:
        conf.update({"spark.archives": f"{deps_uri}#deps",
                     "spark.executorEnv.PYTHONPATH": "./deps",
                     "spark.emr-serverless.driverEnv.PYTHONPATH": "./deps"})
    if python_executable:
        conf.update({"spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python_executable,
                     "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python_executable,
                     "spark.executorEnv.PYSPARK_PYTHON": python_executable})
    conf.update(extra_conf or {})
    return " ".join(f"--conf {k}={v}" for k, v in conf.items())


def status(application_id: str, job_run_id: str) -> dict[str, Any]:
    """The job run's state and details (``get_job_run``)."""
    from mlship.aws.clients import client

    try:
        run = client("emr-serverless").get_job_run(applicationId=application_id, jobRunId=job_run_id)["jobRun"]
    except Exception as exc:  # botocore ClientError: name the run and AWS's message
        raise BatchError(f"cannot read job run {job_run_id} of application {application_id}: {exc}") from None
    return {"application_id": application_id, "job_run_id": job_run_id, "state": run.get("state"),
            "state_details": run.get("stateDetails", ""), "name": run.get("name"),
            "created_at": str(run.get("createdAt", "")), "updated_at": str(run.get("updatedAt", "")),
            "entry_point_arguments": run.get("jobDriver", {}).get("sparkSubmit", {}).get("entryPointArguments")}


def wait(application_id: str, job_run_id: str, timeout: float = 3600.0, interval: float = 10.0,
         on_change: Any = None) -> dict[str, Any]:
    """Poll until the run reaches SUCCESS, FAILED or CANCELLED (calls ``on_change`` on each new state)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        current = status(application_id, job_run_id)
        if current["state"] != last and on_change is not None:
            on_change(current)
        last = current["state"]
        if last in TERMINAL:
            return current
        if time.monotonic() > deadline:
            raise BatchError(f"job run {job_run_id} still {last} after {timeout:.0f}s")
        time.sleep(interval)
