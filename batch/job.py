"""The batch scoring job: read, score through the shared Predictor in an ``arrow_udf``, reconcile, commit.

Driver side only (imports pyspark). The per-row work lives in :mod:`batch.worker`.

Example::

    from mlship.batch.job import JobConfig, run_job
    summary = run_job(JobConfig(model="bundles/churn-1.tar.gz", input="data/in.parquet",
                                output="out/scores", run_id="2026-11-23"))
    summary["counts"]  # {"input": ..., "scored": ..., "quarantined": ..., "reconciled": True}
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from mlship.batch import storage, worker
from mlship.batch.storage import BatchError

MALFORMED = "_mlship_malformed_record"  # Spark's corrupt-record column for CSV input (dropped on output)
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
FORMATS = ("parquet", "csv")
RESERVED = (worker.STATUS, worker.REASON, worker.ERROR_KINDS, worker.PREDICTION, worker.MODEL_NAME,
            worker.MODEL_VERSION, "run_id")


@dataclass
class JobConfig:
    """Arguments of one run (the same as ``batch/score.py``'s command line)."""

    model: str
    input: str
    output: str
    run_id: str
    format: str | None = None  # parquet | csv; default from the input's extension
    id_column: str | None = None  # a unique input column to use as row_id (default: generated)
    master: str | None = "local[*]"
    public_key: str | None = None  # PEM path or text; default $MLSHIP_PUBLIC_KEY
    s3_mode: str = "auto"  # stage (boto3 through local disk) | direct (Spark reads s3://) | auto
    threads: int = 1  # onnxruntime intra-op threads per Python worker
    max_records_per_batch: int = 10_000
    drift: bool = True
    explain: bool = False  # write each scored row's base value and field contributions
    progress: bool = True
    summary_path: str | None = None  # also write the summary JSON here
    spark_conf: dict[str, str] = field(default_factory=dict)


def spark_conf_pairs(items: list[str]) -> dict[str, str]:
    """``--conf KEY=VALUE`` options as a dict; a malformed one raises :class:`BatchError` naming it."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.startswith("spark."):
            raise BatchError(f"--conf {item!r}: expected spark.KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _detect_format(path: str, given: str | None) -> str:
    if given:
        if given not in FORMATS:
            raise BatchError(f"--format must be one of {FORMATS}, got {given!r}")
        return given
    lowered = path.lower().rstrip("/")
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if Path(path).is_dir() and any(Path(path).rglob("*.csv")) and not any(Path(path).rglob("*.parquet")):
        return "csv"
    return "parquet"


def _public_key_pem(public_key: str | None) -> str | None:
    from mlship.runtime.signing import read_public_pem

    value = public_key or os.environ.get("MLSHIP_PUBLIC_KEY")
    if not value:
        return None
    try:
        return read_public_pem(value).decode()
    except ValueError as exc:
        raise BatchError(f"public key not found: {exc}") from None


def ship_bundle(model: str) -> tuple[Path, str]:
    """A cached ``.tar.gz`` of the bundle to ship to executors once; returns (path, sha256).

    The cache key is the bundle's identity: its manifest (which holds the sha256 of every other
    file) and signature. A rerun with the same bundle ships the archive packed last time; the
    workers verify hashes and signature on load, so a tampered cache file is still refused.
    """
    from mlship.runtime.archive import cache_dir, pack_bundle
    from mlship.runtime.bundle import MANIFEST, SIGNATURE
    from mlship.runtime.hashing import sha256_bytes, sha256_file
    from mlship.runtime.sources import resolve_local

    local = resolve_local(model)
    identity = b"".join(p.read_bytes() for p in (local / MANIFEST, local / SIGNATURE) if p.is_file())
    spark_dir = cache_dir() / "spark-files"
    spark_dir.mkdir(parents=True, exist_ok=True)
    target = spark_dir / f"mlship-bundle-{sha256_bytes(identity)[:16]}.tar.gz"
    if not target.is_file():
        tmp = Path(tempfile.mkdtemp(dir=spark_dir))
        try:
            os.replace(pack_bundle(local, tmp / "bundle.tar.gz"), target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target, sha256_file(target)


class _Progress:
    """Polls Spark's status tracker: partitions done of total, rows done (per finished task)."""

    def __init__(self, spark: Any, total_rows: int, counters: Any, enabled: bool):
        self.spark, self.total, self.counters, self.enabled = spark, total_rows, counters, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _rows_done(self) -> int:
        from mlship.batch.accumulators import total_counts

        value = total_counts(dict(self.counters.value or {}))  # a copy: Spark's thread adds partitions
        return int(value.get(worker.SCORED, 0) + value.get(worker.QUARANTINED, 0))

    def _run(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        tracker = self.spark.sparkContext.statusTracker()
        columns = (TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                   TextColumn("{task.fields[parts]}"), TimeElapsedColumn())
        with Progress(*columns, transient=False, console=Console(stderr=True)) as bar:
            task = bar.add_task("rows", total=self.total, parts="")
            while not self._stop.wait(0.5):
                done = tasks = 0
                for stage_id in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(stage_id)
                    if info is not None:
                        done += info.numCompletedTasks
                        tasks += info.numTasks
                parts = f"partitions {done}/{tasks}" if tasks else ""
                bar.update(task, completed=self._rows_done(), parts=parts)
            bar.update(task, completed=self._rows_done(), parts="done")


def _read_input(spark: Any, path: str, fmt: str) -> tuple[Any, int]:
    """The input as a DataFrame, and (CSV) the header's field count.

    CSV is read as records, not lines: quoted fields may hold newlines (``multiLine``; RFC 4180
    quotes, ``""`` inside a quoted field). Every cell is text (the worker parses numbers, as the
    HTTP path does). A record whose field count differs from the header's lands in the
    ``MALFORMED`` column (PERMISSIVE mode; Spark pads/truncates its cells, which the worker then
    ignores) and is quarantined as ``malformed_row``. ``enforceSchema=false`` checks every file's
    header against the one the schema came from, so a file with reordered columns fails the run instead of
    feeding values to the wrong features.
    """
    if fmt != "csv":
        return spark.read.parquet(path), 0
    from pyspark.sql.types import StringType, StructField, StructType

    options = {"header": "true", "multiLine": "true", "quote": '"', "escape": '"', "inferSchema": "false"}
    header = spark.read.options(**options).csv(path).columns  # one file's header
    if MALFORMED in header:
        raise BatchError(f"input {path} has a column named {MALFORMED!r}, which batch uses internally")
    schema = StructType([StructField(name, StringType(), True) for name in [*header, MALFORMED]])
    frame = (spark.read.options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=MALFORMED,
                                enforceSchema="false").schema(schema).csv(path))
    return frame, len(header)


_HEADER_MISMATCH = re.compile(r"CSV header does not conform to the schema\.\s*Header: (?P<header>[^\n]*)\n"
                              r"\s*Schema: (?P<schema>[^\n]*)\n.*?CSV file: (?P<file>\S+)", re.S)


def _count_input(frame: Any, uri: str) -> int:
    """The number of input records; a CSV file whose header differs is a BatchError naming it."""
    try:
        return int(frame.count())
    except Exception as exc:  # py4j wraps Spark's error: only this one is the input's fault
        found = _HEADER_MISMATCH.search(str(exc))
        if found is None:
            raise
        raise BatchError(f"input {uri}: the CSV files' headers differ: {found['file']} has the header "
                         f"[{found['header']}], another file has [{found['schema']}]; every file needs the "
                         "same columns in the same order") from None


def _probability_columns(predictor: Any) -> list[str]:
    if predictor.task != "classification" or not predictor.classes:
        return []
    return [f"probability_{_column_safe(c)}" for c in predictor.classes]


def _explain_columns(predictor: Any) -> dict[str, Any]:
    """``--explain``: the bundle's explainer (loaded on the driver, to fail fast) and the output
    columns it fills, per target its base value then one column per field."""
    from mlship.runtime.explain import ExplainError

    try:
        explainer = predictor.explainer()
    except ExplainError as exc:
        raise BatchError(f"--explain: {exc}") from None
    targets = [t.item() if hasattr(t, "item") else t for t in explainer.targets]  # numpy class labels
    names: list[str] = []
    for target in targets:
        prefix = "contribution_" if len(targets) == 1 else f"contribution_{_column_safe(target)}_"
        names += [f"{prefix}base", *[prefix + _column_safe(field) for field in explainer.fields]]
    clashing = sorted({name for name in names if names.count(name) > 1})
    if clashing:
        raise BatchError(f"--explain: fields give the same contribution columns {clashing}; rename them")
    return {"method": explainer.method, "exact": explainer.exact, "output_space": explainer.output_space,
            "model_calls_per_row": explainer.model_calls, "targets": targets, "columns": names}


def _column_safe(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(value))


@dataclass
class _Model:
    """The bundle loaded on the driver (fail fast) and the archive shipped once to executors."""

    predictor: Any
    public_key_pem: str | None
    archive: Path
    sha256: str
    explain: dict[str, Any] | None = None  # --explain: _explain_columns

    @property
    def explain_columns(self) -> tuple[str, ...]:
        """The contribution columns ``--explain`` writes (none without it)."""
        return tuple(self.explain["columns"]) if self.explain else ()


@dataclass
class _RunFacts:
    """What the run summary reports besides the written counts, gathered as the run goes."""

    config: JobConfig
    model: _Model
    started: str
    t0: float  # perf_counter at the start (the summary's total duration)
    timings: dict[str, float]
    fmt: str
    input_rows: int
    spark_context: Any
    partitions: int
    run_uri: str
    drift_acc: Any  # the drift accumulator, None when drift is off


def run_job(config: JobConfig, spark: Any = None) -> dict[str, Any]:
    """Run one scoring job end to end and return its summary (also written next to the output)."""
    cfg = config
    if not RUN_ID.match(cfg.run_id):
        raise BatchError(f"run id {cfg.run_id!r} must be 1-128 characters of letters, digits, '.', '_', ':' "
                         "or '-', starting with a letter or digit")
    started, t0 = _now(), time.perf_counter()
    timings: dict[str, float] = {}
    s3_mode = _s3_mode(cfg)
    workdir = Path(tempfile.mkdtemp(prefix="mlship-batch-"))
    try:
        model = _load_model(cfg)
        timings["load_model_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        input_path, fmt = _stage_input(cfg, s3_mode, workdir)
        output_is_s3 = storage.is_s3(cfg.output)
        output_root = workdir / "output" if output_is_s3 else Path(cfg.output).expanduser().resolve()
        timings["stage_input_s"] = time.perf_counter() - t
        spark = _session(cfg, spark, model.archive)
        frame, csv_fields = _read_input(spark, input_path, fmt)
        frame = _with_row_id(_check_columns(frame, model.predictor, cfg, model.explain_columns), cfg.id_column)
        t = time.perf_counter()
        input_rows = _count_input(frame, cfg.input)
        timings["count_input_s"] = time.perf_counter() - t
        if input_rows == 0:
            raise BatchError(f"input {cfg.input} has no rows")
        scored, counters, drift_acc = _score(spark.sparkContext, frame, model, cfg, fmt, csv_fields)
        run_name = storage.run_dir_name(cfg.run_id)
        run_uri = f"{cfg.output.rstrip('/')}/{run_name}/" if output_is_s3 else str(output_root / run_name)
        facts = _RunFacts(config=cfg, model=model, started=started, t0=t0, timings=timings, fmt=fmt,
                          input_rows=input_rows, spark_context=spark.sparkContext,
                          partitions=frame.rdd.getNumPartitions(), run_uri=run_uri, drift_acc=drift_acc)
        if output_is_s3 and s3_mode == "direct":  # on EMR: Spark writes s3:// itself, boto3 commits
            result = _commit_direct(spark, scored, counters, facts)
        else:
            result = _commit_local(spark, scored, counters, facts, output_root)
        if cfg.summary_path:
            import json

            Path(cfg.summary_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _s3_mode(cfg: JobConfig) -> str:
    """``stage`` or ``direct``: ``auto`` stages through local disk on local Spark or a local endpoint."""
    if cfg.s3_mode != "auto":
        return cfg.s3_mode
    from mlship.aws.clients import is_local

    local_master = cfg.master is not None and cfg.master.startswith("local")
    return "stage" if (is_local() or local_master) else "direct"


def _load_model(cfg: JobConfig) -> _Model:
    from mlship.runtime.predictor import Predictor

    pem = _public_key_pem(cfg.public_key)
    predictor = Predictor.load(cfg.model, public_key=pem.encode() if pem else None, threads=1)
    explain = _explain_columns(predictor) if cfg.explain else None
    archive, sha256 = ship_bundle(cfg.model)
    return _Model(predictor=predictor, public_key_pem=pem, archive=archive, sha256=sha256, explain=explain)


def _stage_input(cfg: JobConfig, s3_mode: str, workdir: Path) -> tuple[str, str]:
    """The input path Spark reads (s3:// input downloaded first in stage mode) and its format."""
    input_path = cfg.input
    if storage.is_s3(cfg.input) and s3_mode == "stage":
        input_path = str(storage.download_s3(cfg.input, workdir / "input"))
    fmt = _detect_format(input_path, cfg.format)
    if not storage.is_s3(input_path) and not Path(input_path).exists():
        raise BatchError(f"input not found: {cfg.input}")
    return input_path, fmt


def _session(cfg: JobConfig, spark: Any, archive: Path) -> Any:
    """The Spark session (given or started) with the Arrow batch size set and the bundle shipped."""
    from mlship.batch.spark import get_session

    runtime_conf = {"spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.max_records_per_batch),
                    # one open writer per status value instead of sorting every task's rows by status
                    "spark.sql.maxConcurrentOutputFileWriters": "2"}
    spark = spark or get_session(cfg.master, conf={**runtime_conf, **cfg.spark_conf})
    for key, value in runtime_conf.items():
        if key not in cfg.spark_conf:
            spark.conf.set(key, value)
    sc = spark.sparkContext
    if archive.name not in {Path(f).name for f in sc.listFiles}:
        sc.addFile(str(archive))
    return spark


def _check_columns(frame: Any, predictor: Any, cfg: JobConfig, explain_columns: tuple[str, ...] = ()) -> Any:
    """The input frame, once it has every feature and no column the output would overwrite."""
    missing = [n for n in predictor.schema.names if n not in frame.columns]
    if missing:
        model_id = f"{predictor.model_name}:{predictor.model_version}"
        raise BatchError(f"input {cfg.input} is missing feature columns {missing} "
                         f"(model {model_id} needs {predictor.schema.names})")
    reserved = (*RESERVED, *_probability_columns(predictor), *explain_columns, worker.ROW_ID)
    clashes = [c for c in frame.columns if c in reserved and c != cfg.id_column]
    if clashes:
        raise BatchError(f"input columns {clashes} clash with output columns; rename them")
    if cfg.id_column and cfg.id_column not in frame.columns:
        raise BatchError(f"id column {cfg.id_column!r} not found in the input (columns: {frame.columns})")
    return frame


def _with_row_id(frame: Any, id_column: str | None) -> Any:
    """The frame with ``row_id`` first: a copy of ``id_column``, or a generated unique id."""
    from pyspark.sql import functions as F  # noqa: N812

    if not id_column:
        return frame.select(F.monotonically_increasing_id().alias(worker.ROW_ID), "*")
    frame = frame.withColumn(worker.ROW_ID, F.col(id_column))
    if id_column != worker.ROW_ID:
        frame = frame.select(worker.ROW_ID, *[c for c in frame.columns if c != worker.ROW_ID])
    return frame


def _score(sc: Any, frame: Any, model: _Model, cfg: JobConfig, fmt: str, csv_fields: int) -> tuple[Any, Any, Any]:
    """The lazily scored frame, its counts accumulator and its drift accumulator.

    An ``arrow_udf`` scores the feature columns (and, for CSV, the corrupt-record column) and
    returns a struct of the computed columns; every other column stays in Spark. The UDF is
    nondeterministic so that the optimizer never evaluates it twice for the struct's fields.
    """
    from mlship.batch.accumulators import PartitionsParam

    predictor = model.predictor
    probability_columns = _probability_columns(predictor)
    profile = predictor.bundle.profile if cfg.drift else None
    counters = sc.accumulator({}, PartitionsParam())
    drift_acc = sc.accumulator({}, PartitionsParam()) if cfg.drift else None
    numeric = tuple(f.name for f in predictor.schema.fields if f.is_numeric)
    spec = worker.WorkerSpec(bundle_file=model.archive.name, public_key_pem=model.public_key_pem,
                             threads=cfg.threads, text_input=fmt == "csv", numeric_fields=numeric,
                             probability_columns=tuple(probability_columns), task=predictor.task,
                             drift=cfg.drift, malformed_column=MALFORMED if fmt == "csv" else None,
                             csv_fields=csv_fields, input_columns=tuple(predictor.schema.names),
                             explain_columns=model.explain_columns)
    body = partial(worker.score_batches, spec=spec, counters=counters, drift_acc=drift_acc, profile=profile)
    return _scored_frame(frame, body, spec, predictor), counters, drift_acc


def _scored_frame(frame: Any, body: Any, spec: worker.WorkerSpec, predictor: Any) -> Any:
    """``frame``'s columns, then the UDF's outputs, the model's identity and the row's status."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.functions import ArrowUDFType, arrow_udf

    label_type = {"boolean": "boolean", "Int64": "bigint"}.get(worker.label_dtype(predictor), "string")
    fields = worker.result_fields(spec, label_type)
    result_type = "struct<" + ", ".join(f"`{name}`: {kind}" for name, kind in fields) + ">"
    with warnings.catch_warnings():  # pyspark prefers type hints, which a partial does not carry
        warnings.filterwarnings("ignore", message=".*type hints for arrow UDF", category=UserWarning)
        udf = arrow_udf(body, result_type, ArrowUDFType.SCALAR_ITER)
    inputs = [F.col(f"`{name}`") for name in (*spec.input_columns, *([MALFORMED] if spec.malformed_column else []))]
    result = "_mlship_result"
    kept = [F.col(f"`{c}`") for c in frame.columns if c != MALFORMED]
    with_result = frame.select(*kept, udf.asNondeterministic()(*inputs).alias(result))
    outputs = [F.col(f"{result}.`{name}`").alias(name) for name, _ in fields if name != worker.SCORED]
    status = F.when(F.col(f"{result}.`{worker.SCORED}`"), worker.SCORED).otherwise(worker.QUARANTINED)
    return with_result.select(*kept, *outputs[:-2], F.lit(predictor.model_name).alias(worker.MODEL_NAME),
                              F.lit(predictor.model_version).alias(worker.MODEL_VERSION), *outputs[-2:],
                              status.alias(worker.STATUS))


def _commit_direct(spark: Any, scored: Any, counters: Any, facts: _RunFacts) -> dict[str, Any]:
    """Spark writes to an s3:// staging prefix; boto3 publishes it as the run (EMR)."""
    cfg = facts.config
    staging_uri = storage.s3_staging_prefix(cfg.output, cfg.run_id)
    data_uri = staging_uri + "data"
    written, totals = _write(spark, scored, data_uri, counters, facts)
    t = time.perf_counter()
    sources = storage.staged_keys(data_uri, worker.STATUS)
    result = _summary(facts, written, totals, sorted(sources))
    _, result["replaced_previous"] = storage.publish_s3(sources, cfg.output, cfg.run_id, staging_uri, result)
    result["durations_s"]["commit_s"] = round(time.perf_counter() - t, 3)
    return result


def _commit_local(spark: Any, scored: Any, counters: Any, facts: _RunFacts, output_root: Path) -> dict[str, Any]:
    """Write to a local staging folder under the run lock, commit it (and upload it for s3:// output)."""
    cfg = facts.config
    with storage.run_lock(output_root, cfg.run_id):
        staging = storage.new_staging(output_root, cfg.run_id)
        try:
            data_dir = staging / "data"
            written, totals = _write(spark, scored, str(data_dir), counters, facts)
            t = time.perf_counter()
            result = _summary(facts, written, totals, _data_files(data_dir))
            run = storage.assemble_run(staging, data_dir, result, worker.STATUS)
            target, replaced = storage.commit_local(run, output_root, cfg.run_id)
            result["replaced_previous"] = replaced
            if storage.is_s3(cfg.output):  # local run, s3:// output: publish the committed run via boto3
                staging_uri = storage.s3_staging_prefix(cfg.output, cfg.run_id)
                _, result["replaced_previous"] = storage.publish_s3(
                    storage.upload_run(target, staging_uri), cfg.output, cfg.run_id, staging_uri)
            result["durations_s"]["commit_s"] = round(time.perf_counter() - t, 3)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _write(spark: Any, scored: Any, data_path: str, counters: Any,
           facts: _RunFacts) -> tuple[dict[str, int], dict[str, int]]:
    """Score and write to staging (partitioned by status), then count what was written."""
    input_rows, timings = facts.input_rows, facts.timings
    t = time.perf_counter()
    with _Progress(spark, input_rows, counters, facts.config.progress):
        scored.write.mode("errorifexists").partitionBy(worker.STATUS).parquet(data_path)
    timings["score_write_s"] = time.perf_counter() - t
    t = time.perf_counter()
    written = {r[worker.STATUS]: int(r["count"]) for r in
               spark.read.parquet(data_path).groupBy(worker.STATUS).count().collect()}
    from mlship.batch.accumulators import total_counts

    totals = total_counts(counters.value)
    timings["reconcile_s"] = time.perf_counter() - t
    n_scored, n_bad = written.get(worker.SCORED, 0), written.get(worker.QUARANTINED, 0)
    if not (input_rows == n_scored + n_bad and totals.get(worker.SCORED, 0) == n_scored
            and totals.get(worker.QUARANTINED, 0) == n_bad):
        raise BatchError(f"counts do not reconcile: input {input_rows} rows, written {n_scored} scored + "
                         f"{n_bad} quarantined, workers counted {totals}; nothing was committed")
    return written, totals


def _drift_summary(facts: _RunFacts) -> dict[str, Any]:
    drift_acc = facts.drift_acc
    if drift_acc is None:
        return {"status": "disabled"}
    from mlship.batch.accumulators import merged_partials

    merged = merged_partials(drift_acc.value)
    if merged is None:
        return {"status": "no valid rows"}
    result = merged.result()
    drift: dict[str, Any] = result.to_dict()
    drift["summary"] = result.summary()
    return drift


def _summary(facts: _RunFacts, written: dict[str, int], totals: dict[str, int],
             files: list[str]) -> dict[str, Any]:
    """The run summary: identity, counts that reconcile, durations, throughput, drift."""
    cfg, predictor, timings, sc = facts.config, facts.model.predictor, facts.timings, facts.spark_context
    reasons = {k.removeprefix(worker.KIND): v for k, v in sorted(totals.items()) if k.startswith(worker.KIND)}
    run_uri = facts.run_uri
    input_rows = facts.input_rows
    durations = {k: round(v, 3) for k, v in timings.items()}
    durations["total_s"] = round(time.perf_counter() - facts.t0, 3)
    return {
        "run_id": cfg.run_id, "status": "succeeded", "started": facts.started, "finished": _now(),
        "model": {"name": predictor.model_name, "version": predictor.model_version, "uri": cfg.model,
                  "bundle_sha256": facts.model.sha256, "task": predictor.task},
        "input": {"uri": cfg.input, "format": facts.fmt, "rows": input_rows},
        "output": {"uri": cfg.output, "run_path": run_uri,
                   "quarantine_path": run_uri.rstrip("/") + "/" + storage.QUARANTINE, "files": files},
        "counts": {"input": input_rows, "scored": written.get(worker.SCORED, 0),
                   "quarantined": written.get(worker.QUARANTINED, 0), "reconciled": True,
                   "quarantine_reasons": reasons,
                   # rows, not kinds: bad input vs a model emitting NaN/inf (an alert, not a data issue)
                   "quarantine_causes": {"input": totals.get(worker.CAUSE_INPUT, 0),
                                         "model": totals.get(worker.CAUSE_MODEL, 0)}},
        "drift": _drift_summary(facts),
        "explain": facts.model.explain or {"status": "disabled"},
        "durations_s": durations,
        "throughput_rows_per_s": round(input_rows / max(timings["score_write_s"], 1e-9), 1),
        "spark": {"master": sc.master, "default_parallelism": sc.defaultParallelism,
                  "input_partitions": facts.partitions, "onnxruntime_threads_per_worker": cfg.threads,
                  "arrow_batch_rows": cfg.max_records_per_batch},
        "config": {k: v for k, v in asdict(cfg).items() if k != "public_key"},
    }


def _data_files(data_dir: Path) -> list[str]:
    """Relative paths of data files as they will appear in the run directory."""
    names = []
    for path in sorted(data_dir.rglob("*.parquet")):
        rel = path.relative_to(data_dir).as_posix()
        rel = rel.replace(f"{worker.STATUS}={worker.SCORED}/", "", 1)
        rel = rel.replace(f"{worker.STATUS}={worker.QUARANTINED}/", storage.QUARANTINE + "/", 1)
        names.append(rel)
    return names

