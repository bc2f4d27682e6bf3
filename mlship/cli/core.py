"""Core verbs: ``export``, ``keygen``, ``verify``, ``predict``, ``inspect``, ``upload``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlship.cli.common import fail
from mlship.errors import MlshipError

if TYPE_CHECKING:
    from mlship.runtime.bundle import Bundle


def export(
    model: Path = typer.Argument(..., help="Fitted scikit-learn estimator/Pipeline (joblib or pickle). "
                                 "Only load files you trust: unpickling runs the code the file names."),
    holdout: Path = typer.Argument(..., help="Labelled holdout sample (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write (a .tar.gz is written next to it)."),
    name: str = typer.Option(..., help="Model name."),
    version: str = typer.Option(None, help="Model version (default: a UTC timestamp)."),
    label: str = typer.Option("label", help="Label column of the holdout."),
    key: Path = typer.Option(None, help="Ed25519 private key (PEM) to sign the manifest."),
    reference: Path = typer.Option(None, help="Reference data for the baseline profile (default: holdout)."),
    train: Path = typer.Option(None, help="Training data for --cv (default: holdout)."),
    cv: int = typer.Option(0, help="k-fold cross-validation of the estimator, recorded in the manifest."),
    sensitive: str = typer.Option(None, help="Sensitive attribute column (recorded for fairness checks)."),
    description: str = typer.Option("", help="Free text for the model card."),
    parity_tolerance: float = typer.Option(1e-4, help="Max per-row |sklearn - onnxruntime| difference."),
    parity_max_share: float = typer.Option(0.005, help="Max share of rows over the tolerance (0 = strict)."),
    enforce_range: bool = typer.Option(False, help="Reject inputs outside the observed range of each feature."),
    golden: int = typer.Option(5, help="How many golden examples to store."),
) -> None:
    """Export a fitted estimator + holdout into a verified, signed bundle."""
    from rich.console import Console

    from mlship.evaluation.export import ParityPolicy, export_bundle, load_estimator, load_table

    console = Console(stderr=True)
    try:
        estimator = load_estimator(model)
        frame = load_table(holdout)
        ref = load_table(reference) if reference else None
        train_frame = load_table(train) if train else None
        with console.status("exporting") as status:
            path = export_bundle(
                estimator, frame, label, out, name=name, version=version, description=description,
                private_key=key, reference=ref, train=train_frame, cv=cv or None, sensitive=sensitive,
                parity=ParityPolicy(parity_tolerance, parity_max_share), n_golden=golden,
                enforce_range=enforce_range, data_path=holdout,
                progress=lambda msg: (status.update(msg), console.log(msg)))
    except (MlshipError, ValueError, FileExistsError) as exc:
        fail(str(exc))
    manifest = json.loads((path / "manifest.json").read_text())
    metrics = {k: v for k, v in manifest["metrics"]["holdout"].items() if isinstance(v, float)}
    typer.echo(f"bundle {manifest['name']}:{manifest['version']} written to {path} (+ {path}.tar.gz)")
    typer.echo("holdout metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    p = manifest["parity"]
    typer.echo(f"parity: max diff {p['max_abs_diff']:.2e}, {p['rows_over_tolerance']}/{p['rows']} rows over "
               f"{p['tolerance']:g}, label agreement {p['label_agreement']:.4f}")
    typer.echo(f"model card: {path / 'model_card.html'}")


def keygen(out: Path = typer.Option(Path("keys"), "--out", "-o", help="Directory for the key pair."),
           name: str = typer.Option("mlship", help="Base name of the key files.")) -> None:
    """Create an Ed25519 key pair (NAME.key, mode 0600, and NAME.pub)."""
    from mlship.runtime.signing import generate_keypair, key_id, load_public_key

    try:
        private, public = generate_keypair(out, name)
    except FileExistsError as exc:
        fail(str(exc))
    typer.echo(f"private key: {private}\npublic key:  {public}\nkey id: {key_id(load_public_key(public))}")


def verify(bundle: str = typer.Argument(..., help="Bundle directory, .tar.gz, s3:// or mlship:// URI."),
           public_key: Path = typer.Option(None, help="Trusted Ed25519 public key (default: $MLSHIP_PUBLIC_KEY, "
                                           "as every loader): makes the signature mandatory."),
           golden: bool = typer.Option(True, help="Also run the golden examples through onnxruntime.")) -> None:
    """Check every file hash and the signature; name each file or field that does not match."""
    from mlship.errors import VerificationError
    from mlship.runtime.predictor import resolve_public_key
    from mlship.runtime.sources import open_bundle

    try:
        key = resolve_public_key(public_key)
        opened = open_bundle(bundle)
        notes = opened.verify(key)
        checked = _check_golden(opened) if golden else 0
    except VerificationError as exc:
        for problem in exc.problems:
            typer.secho(f"FAIL {problem}", fg="red", err=True)
        fail(f"{bundle} failed verification ({len(exc.problems)} problem{'s' if len(exc.problems) > 1 else ''})")
    except (MlshipError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {bundle}: {exc.strerror or exc}")
    typer.secho(f"OK {opened.name}:{opened.version}: {len(opened.manifest['files'])} files match their sha256"
                + (", signature valid" if key else "") + (f", {checked} golden examples pass" if golden else ""),
                fg="green")
    for note in notes:
        typer.echo(f"note: {note}")


def _check_golden(opened: Bundle) -> int:
    """Run the golden examples; an onnxruntime failure to load the model is one error line."""
    from mlship.runtime.predictor import Predictor

    try:
        predictor = Predictor(opened)
    except MlshipError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors for an unloadable model
        fail(f"onnxruntime cannot load the model: {type(exc).__name__}: {exc}")
    return predictor.check_golden()


def predict(bundle: str = typer.Argument(..., help="Bundle directory, .tar.gz, s3:// or mlship:// URI."),
            data: Path = typer.Argument(..., help="JSON (records or {'instances': [...]}) or CSV file; - for stdin."),
            public_key: Path = typer.Option(None, help="Trusted public key (signature becomes mandatory).")) -> None:
    """Predict locally through the shared predictor and print JSON.

    The file is decoded exactly like an HTTP request body (``mlship.runtime.protocol``): JSON
    records or ``{"instances": [...]}``, or CSV (by the ``.csv`` extension, else sniffed).
    """
    from mlship.errors import ValidationError
    from mlship.runtime import protocol
    from mlship.runtime.predictor import Predictor

    raw = sys.stdin.buffer.read() if str(data) == "-" else _read(data)
    content_type = protocol.CSV if str(data).endswith(".csv") else None
    try:
        predictor = Predictor.load(bundle, public_key=public_key)
        result = predictor.predict(protocol.decode(raw, content_type, max_bytes=len(raw)))
    except ValidationError as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2), err=True)
        fail(str(exc))
    except (MlshipError, ValueError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(result.to_dict(), indent=2))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def inspect(bundle: str = typer.Argument(..., help="Bundle directory, .tar.gz, s3:// or mlship:// URI."),
            field: str = typer.Option(None, help="Print only this top-level manifest field.")) -> None:
    """Print a bundle's manifest (or one field of it)."""
    from mlship.runtime.sources import open_bundle

    try:
        manifest = open_bundle(bundle).manifest
    except MlshipError as exc:
        fail(str(exc))
    if field and field not in manifest:
        fail(f"manifest has no field {field!r} (fields: {', '.join(sorted(manifest))})")
    typer.echo(json.dumps(manifest[field] if field else manifest, indent=2))


def upload(bundle: Path = typer.Argument(..., help="Bundle directory or .tar.gz."),
           uri: str = typer.Argument(..., help="Destination s3://bucket/key.tar.gz")) -> None:
    """Upload a bundle archive to S3 (the local AWS when AWS_ENDPOINT_URL is set)."""
    import tempfile

    from mlship.aws.clients import client
    from mlship.aws.s3 import parse_s3_uri
    from mlship.runtime.archive import pack_bundle
    from mlship.runtime.bundle import Bundle

    try:
        bucket, key = parse_s3_uri(uri)
        if bundle.is_dir():
            Bundle(bundle)
            tarball = pack_bundle(bundle, Path(tempfile.mkdtemp()) / "bundle.tar.gz")
        else:
            tarball = bundle
        client("s3").upload_file(str(tarball), bucket, key)
    except MlshipError as exc:
        fail(str(exc))
    except Exception as exc:  # botocore/S3 errors: one line
        fail(f"upload to {uri} failed: {exc}")
    typer.echo(f"uploaded {tarball} to {uri}")


def register(app: typer.Typer) -> None:
    for fn in (export, keygen, verify, predict, inspect, upload):
        app.command()(fn)
