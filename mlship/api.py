"""The Python API of the flow: what the CLI commands call, for notebooks and scripts.

    import mlship

    exported = mlship.export(pipeline, holdout, label="churned", out="bundles/churn-3", name="churn", version="3")
    mlship.verify(exported.path)
    answer = mlship.Predictor.load(exported.path).predict([row])
    version = mlship.register(exported.path, bucket="my-registry")
    promotion = mlship.promote("churn", "3", holdout, "gate.yaml", bucket="my-registry")
    report = mlship.drift(exported.path, "traffic.parquet")

Every function takes paths or objects (a fitted estimator or a joblib file, a DataFrame or a
CSV/Parquet file), raises the typed :class:`~mlship.errors.MlshipError` subclasses the CLI turns
into one error line, and returns a typed result with ``to_json()``. :func:`rollout` takes a
version to the configuration's SageMaker endpoint (``mlship rollout endpoint``); batch scoring is
:func:`mlship.batch.run` and the edge build :func:`mlship.edge.build`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlship.extras import MissingExtra
from mlship.runtime.predictor import Predictor

__all__ = ["Predictor", "export", "verify", "register", "evaluate", "promote", "drift", "rollout", "MissingExtra",
           "ExportResult", "VerifyResult", "Registered", "DriftReport"]

Progress = Callable[[str], None]


def _needs_extras(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a missing optional library inside ``function`` into :class:`MissingExtra` naming its extra."""
    import functools

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        from mlship.extras import missing_extra

        try:
            return function(*args, **kwargs)
        except MissingExtra:
            raise
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc.name or "", (function.__name__,))
            if extra is None:
                raise
            raise MissingExtra(f"mlship.{function.__name__} needs the '{extra}' extra: pip install "
                               f"'mlship[{extra}]' ({exc.name} is not installed)", name=exc.name) from exc

    return call


class _Result:
    """``to_dict()`` and ``to_json()`` for the API's result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@dataclass
class ExportResult(_Result):
    """A bundle written by :func:`export`."""

    path: Path
    tarball: Path
    name: str
    version: str
    metrics: dict[str, float]
    parity: dict[str, Any]
    signed: bool

    @property
    def model_card(self) -> Path:
        return self.path / "model_card.html"


@dataclass
class VerifyResult(_Result):
    """A bundle whose every file hash (and signature, when a key was given) matched."""

    name: str
    version: str
    files: int
    signature_checked: bool
    golden_checked: int
    notes: list[str] = field(default_factory=list)


@dataclass
class Registered(_Result):
    """A registry version: ``created`` is False when the same content was registered before."""

    name: str
    version: str
    bundle_uri: str
    created: bool
    record: dict[str, Any]


@dataclass
class DriftReport(_Result):
    """A drift comparison; ``report`` is the JSON document, ``paths`` the files written (if any)."""

    dataset_drift: bool | None  # None: no verdict (too few rows)
    summary: str
    report: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def _estimator(model: Any) -> Any:
    from mlship.evaluation.export import load_estimator

    return load_estimator(model) if isinstance(model, str | Path) else model


def _frame(data: Any) -> Any:
    from mlship.evaluation.export import load_table

    return load_table(Path(data)) if isinstance(data, str | Path) else data


@_needs_extras
def export(model: Any, holdout: Any, *, label: str, out: str | Path, name: str, version: str | None = None,
           key: Any = None, reference: Any = None, train: Any = None, cv: int | None = None,
           sensitive: str | None = None, description: str = "", parity_tolerance: float = 1e-4,
           parity_max_share: float = 0.005, enforce_range: bool = False, golden: int = 5,
           explain_budget: int | None = None, progress: Progress | None = None) -> ExportResult:
    """Export a fitted estimator (or a joblib file: only load files you trust) with a labelled
    holdout into a verified bundle directory (and its ``.tar.gz``), signed when ``key`` is given."""
    from mlship.evaluation.export import ParityPolicy, export_bundle

    path = export_bundle(
        _estimator(model), _frame(holdout), label, out, name=name, version=version, description=description,
        private_key=key, reference=None if reference is None else _frame(reference),
        train=None if train is None else _frame(train), cv=cv or None, sensitive=sensitive,
        parity=ParityPolicy(parity_tolerance, parity_max_share), n_golden=golden, enforce_range=enforce_range,
        data_path=holdout if isinstance(holdout, str | Path) else None, progress=progress,
        explain_budget=explain_budget)
    manifest = json.loads((path / "manifest.json").read_text())
    metrics = {k: v for k, v in manifest["metrics"]["holdout"].items() if isinstance(v, float)}
    return ExportResult(path, Path(f"{path}.tar.gz"), manifest["name"], manifest["version"], metrics,
                        manifest["parity"], (path / "signature.json").exists())


@_needs_extras
def verify(bundle: str | Path, public_key: Any = None, *, golden: bool = True) -> VerifyResult:
    """Check every file hash and the signature (mandatory with ``public_key`` or ``$MLSHIP_PUBLIC_KEY``)
    and run the golden examples; raises :class:`~mlship.errors.VerificationError` naming each problem."""
    from mlship.runtime.predictor import resolve_public_key
    from mlship.runtime.sources import open_bundle

    key = resolve_public_key(public_key)
    opened = open_bundle(bundle)
    notes = opened.verify(key)
    checked = _session(opened).check_golden() if golden else 0
    return VerifyResult(opened.name, opened.version, len(opened.manifest["files"]), key is not None, checked,
                        list(notes))


def _session(opened: Any) -> Predictor:
    """A predictor of a verified bundle; a model onnxruntime cannot load is a :class:`BundleError`."""
    from mlship.errors import BundleError, MlshipError

    try:
        return Predictor(opened)
    except MlshipError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors for an unloadable model
        raise BundleError(f"onnxruntime cannot load the model: {type(exc).__name__}: {exc}") from exc


def _registry(bucket: str | None, sagemaker: bool) -> Any:
    from mlship.registry.store import Registry

    return Registry(bucket, sagemaker=sagemaker)


@_needs_extras
def register(bundle: str | Path, *, bucket: str | None = None, public_key: Any = None,
             description: str | None = None, sagemaker: bool = True) -> Registered:
    """Store a bundle as ``models/NAME/VERSION`` in the registry bucket (``$MLSHIP_REGISTRY_BUCKET``)
    and mirror it into the SageMaker Model Registry when ``sagemaker``."""
    record, created = _registry(bucket, sagemaker).register(bundle, public_key=public_key, description=description)
    return Registered(record.name, record.version, record.bundle_uri, created, record.to_dict())


@_needs_extras
def evaluate(bundle: str | Path, data: Any, *, label: str | None = None, slices: list[str] | None = None,
             sensitive: str | None = None, bootstrap: int = 200, public_key: Any = None,
             progress: Progress | None = None) -> Any:
    """Metrics with bootstrap intervals, slices, fairness and latency of a bundle through onnxruntime
    (:class:`~mlship.evaluation.evaluate.Evaluation`; ``write_report(ev, dir)`` writes JSON + HTML)."""
    from mlship.evaluation.evaluate import evaluate as run

    return run(str(bundle), _frame(data), label, slices=list(slices or []), sensitive=sensitive,
               bootstrap=bootstrap, public_key=public_key, progress=progress)


@_needs_extras
def promote(name: str, version: str, data: Any, thresholds: Any, *, bucket: str | None = None,
            label: str | None = None, reason: str = "", who: str | None = None, public_key: Any = None,
            report_dir: str | Path | None = None, sagemaker: bool = True, progress: Progress | None = None) -> Any:
    """Gate ``NAME/VERSION`` against the champion on ``data`` and, only if every check passes, move
    ``challenger`` to it (:class:`~mlship.evaluation.gate.Promotion`). ``thresholds`` is a file or a
    :class:`~mlship.evaluation.gate.Thresholds`."""
    from mlship.evaluation.gate import Thresholds, load_thresholds
    from mlship.evaluation.gate import promote as run

    limits = thresholds if isinstance(thresholds, Thresholds) else load_thresholds(thresholds)
    return run(_registry(bucket, sagemaker), name, version, _frame(data), limits, label=label, reason=reason,
               who=who, public_key=public_key, report_dir=report_dir, progress=progress)


@_needs_extras
def drift(reference: str | Path, current: str | Path, *, out: str | Path | None = None,
          thresholds: dict[str, Any] | None = None, exclude: list[str] | None = None, batch_rows: int = 200_000,
          on_rows: Callable[[int, int], None] | None = None) -> DriftReport:
    """Compare ``current`` (a file or directory of .csv/.parquet/.jsonl) with a bundle's baseline
    profile or a reference dataset, streaming it in batches; with ``out``, write report.json/.html.
    ``on_rows(done, total)`` reports progress."""
    from mlship.monitoring.tables import is_dataset, profile_dataset
    from mlship.stats.drift import DriftAccumulator

    skip = list(exclude or [])
    if is_dataset(str(reference)):
        profile, model = profile_dataset(str(reference), exclude=skip), {"name": Path(reference).name,
                                                                        "version": "dataset"}
    else:
        from mlship.runtime.sources import open_bundle

        bundle = open_bundle(reference)
        bundle.verify()
        profile, model = bundle.profile, {"name": bundle.name, "version": bundle.version}
    current = Path(current)
    if not current.exists():
        raise FileNotFoundError(f"current data not found: {current}")
    wanted = [name for name in profile.get("features") or {} if name not in skip]
    acc = _current_drift(DriftAccumulator(profile), current, wanted, batch_rows, on_rows)
    result = acc.result(thresholds or {})
    report = {"format": "mlship-drift-report/1", "generated_at": datetime.now(UTC).isoformat(), "model": model,
              "reference": str(reference), "current": str(current), "drift": result.to_dict()}
    found = DriftReport(result.dataset_drift, result.summary(), report)
    if out is not None:
        found.paths = _write_drift(report, Path(out))
    return found


def _current_drift(acc: Any, current: Path, wanted: list[str], batch_rows: int,
                   on_rows: Callable[[int, int], None] | None) -> Any:
    """Stream ``current`` into the accumulator: Parquet one column per thread, CSV and JSON Lines in
    Arrow record batches; files Arrow cannot read with one type per column in pandas row batches."""
    from mlship.monitoring.tables import is_parquet

    if is_parquet(current):
        return _columnwise_drift(acc, current, wanted, batch_rows, on_rows)
    return _arrow_drift(acc, current, wanted, batch_rows, on_rows)


def _arrow_drift(acc: Any, current: Path, wanted: list[str], batch_rows: int,
                 on_rows: Callable[[int, int], None] | None) -> Any:
    """CSV or JSON Lines through Arrow's streaming readers into a scratch accumulator, merged into
    ``acc`` only once the whole file was read: if Arrow gives up half way, nothing was counted twice
    when pandas reads the file again from the start."""
    from mlship.monitoring.spool import SpoolError, arrow_batches, widened_schema
    from mlship.monitoring.tables import arrow_to_numpy, data_files

    scratch = type(acc)(acc.profile)
    done_rows = 0
    files = data_files(current)
    try:
        for batch in arrow_batches(files, widened_schema(files[0])):
            scratch.update({n: arrow_to_numpy(batch.column(n)) for n in batch.schema.names if n in wanted})
            done_rows += len(batch)
            if on_rows is not None:
                on_rows(done_rows, None)
    except SpoolError:
        return _rowwise_drift(acc, current, wanted, batch_rows, on_rows)
    return acc.merge(scratch)


def _columnwise_drift(acc: Any, current: Path, wanted: list[str], batch_rows: int,
                      on_rows: Callable[[int, int], None] | None) -> Any:
    """Parquet one column per thread (memory: one column chunk per thread; each column's sketch is
    touched by its thread only)."""
    from mlship.monitoring.tables import column_chunks, count_rows, map_columns

    total = count_rows(current) or 0

    def sketch(name: str) -> None:
        for values in column_chunks(current, name, batch_rows):
            acc.update_feature(name, values)

    def done(k: int) -> None:
        if on_rows is not None:
            on_rows(total * k // max(len(wanted), 1), total)

    map_columns(sketch, wanted, done)
    return acc.add_rows(total)


def _rowwise_drift(acc: Any, current: Path, wanted: list[str], batch_rows: int,
                   on_rows: Callable[[int, int], None] | None) -> Any:
    """Row batches read with pandas (values of mixed types kept: the sketches count them as invalid)."""
    from mlship.monitoring.tables import count_rows, iter_batches

    total = count_rows(current)
    done_rows = 0
    for batch in iter_batches(current, batch_rows, columns=wanted):
        acc.update({k: v for k, v in batch.items() if k in wanted})
        done_rows += len(next(iter(batch.values()))) if batch else 0
        if on_rows is not None:
            on_rows(done_rows, total)
    return acc


def _write_drift(report: dict[str, Any], out: Path) -> dict[str, Path]:
    from mlship.monitoring import html as html_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["html"].write_text(html_report.render(report))
    return paths


@_needs_extras
def rollout(model: str, *, env: str | None = None, bucket: str | None = None, endpoint: str | None = None,
            policy: Any = None, alarms: list[str] | None = None, image: str | None = None, role: str | None = None,
            public_key: Any = None, alias: str | None = None, timeout: float = 7200.0, poll: float = 15.0,
            on_phase: Callable[[Any], None] | None = None) -> Any:
    """Roll ``model`` (``NAME/VERSION``, ``NAME@challenger``, an ``mlship://`` or ``s3://`` bundle) out
    to the configuration's SageMaker endpoint as ``mlship rollout endpoint --model`` does: checked
    first, blue/green with the configured (or given) policy and rollback alarms, the outcome recorded
    on the version, and only a success moves ``champion`` and the deployed-model parameters. Returns
    the :class:`~mlship.release.outcome.RolloutOutcome` (``ok``, ``to_json()``); raises
    :class:`~mlship.release.endpoint.RolloutError` for a request refused before any change."""
    from mlship.aws.clients import client
    from mlship.config import load_project_config
    from mlship.release.endpoint_release import EndpointRelease, endpoint_request
    from mlship.release.models import check_deployable, open_registry, resolve_model
    from mlship.release.settle import DeployedParameters, settle_rollout

    cfg = load_project_config(env)
    registry = open_registry(bucket)
    resolved = resolve_model(model, registry)
    check_deployable(resolved, public_key)
    alias = alias or cfg.model.champion_alias
    expected = registry.get_alias(resolved.name, alias) if registry is not None else None
    request = endpoint_request(cfg, resolved, policy or cfg.endpoint.rollout, endpoint=endpoint, alarms=alarms,
                               image=image, role=role)
    runner = EndpointRelease(client("sagemaker"), client("cloudwatch"), poll_seconds=poll)
    outcome = runner.run(runner.prepare(request), timeout, on_phase)
    settle_rollout(outcome, resolved, target=f"endpoint:{outcome.endpoint}", expected_champion=expected,
                   alias=alias, ssm=client("ssm"), parameters=DeployedParameters.of(cfg.names))
    return outcome
