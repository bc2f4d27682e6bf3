"""Core verbs: ``export``, ``keygen``, ``verify``, ``predict``, ``inspect``, ``upload``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mlship.cli.common import JSON_HELP, fail
from mlship.errors import MlshipError


def export(
    model: Path = typer.Argument(..., help="Fitted scikit-learn estimator/Pipeline (joblib or pickle). "
                                 "Only load files you trust: unpickling runs the code the file names."),
    holdout: Path = typer.Argument(..., help="Labelled holdout sample (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write (a .tar.gz is written next to it)."),
    name: str = typer.Option(..., help="Model name."),
    version: str = typer.Option(None, help="Model version (default: a UTC timestamp)."),
    label: str = typer.Option("label", help="Label column of the holdout."),
    key: Path = typer.Option(None, envvar="MLSHIP_SIGNING_KEY",
                             help="Ed25519 private key (PEM) to sign the manifest (default: $MLSHIP_SIGNING_KEY)."),
    reference: Path = typer.Option(None, help="Reference data for the baseline profile (default: holdout)."),
    train: Path = typer.Option(None, help="Training data for --cv (default: holdout)."),
    cv: int = typer.Option(0, help="k-fold cross-validation of the estimator, recorded in the manifest."),
    sensitive: str = typer.Option(None, help="Sensitive attribute column (recorded for fairness checks)."),
    description: str = typer.Option("", help="Free text for the model card."),
    parity_tolerance: float = typer.Option(1e-4, help="Max per-row |sklearn - onnxruntime| difference."),
    parity_max_share: float = typer.Option(0.005, help="Max share of rows over the tolerance (0 = strict)."),
    enforce_range: bool = typer.Option(False, help="Reject inputs outside the observed range of each feature."),
    golden: int = typer.Option(5, help="How many golden examples to store."),
    explain_budget: int = typer.Option(None, help="Model evaluations per explained row when the model gets the "
                                       "sampling explainer (not a tree ensemble nor linear; default 1024)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export a fitted estimator + holdout into a verified, signed bundle."""
    from mlship import api
    from mlship.cli.common import console as new_console

    console = new_console(stderr=True)
    try:
        with console.status("exporting") as status:
            result = api.export(model, holdout, label=label, out=out, name=name, version=version, key=key,
                                reference=reference, train=train, cv=cv or None, sensitive=sensitive,
                                description=description, parity_tolerance=parity_tolerance,
                                parity_max_share=parity_max_share, enforce_range=enforce_range, golden=golden,
                                explain_budget=explain_budget,
                                progress=lambda msg: (status.update(msg), console.log(msg)))
    except (MlshipError, ValueError, FileExistsError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(result.to_json())
        return
    typer.echo(f"bundle {result.name}:{result.version} written to {result.path} (+ {result.tarball})")
    typer.echo("holdout metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    p = result.parity
    typer.echo(f"parity: max diff {p['max_abs_diff']:.2e}, {p['rows_over_tolerance']}/{p['rows']} rows over "
               f"{p['tolerance']:g}, label agreement {p['label_agreement']:.4f}")
    typer.echo(f"model card: {result.model_card}")


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
           golden: bool = typer.Option(True, help="Also run the golden examples through onnxruntime."),
           as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Check every file hash and the signature; name each file or field that does not match."""
    from mlship import api
    from mlship.errors import VerificationError

    try:
        result = api.verify(bundle, public_key, golden=golden)
    except VerificationError as exc:
        for problem in exc.problems:
            typer.secho(f"FAIL {problem}", fg="red", err=True)
        fail(f"{bundle} failed verification ({len(exc.problems)} problem{'s' if len(exc.problems) > 1 else ''})")
    except (MlshipError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {bundle}: {exc.strerror or exc}")
    if as_json:
        typer.echo(result.to_json())
        return
    typer.secho(f"OK {result.name}:{result.version}: {result.files} files match their sha256"
                + (", signature valid" if result.signature_checked else "")
                + (f", {result.golden_checked} golden examples pass" if golden else ""), fg="green")
    for note in result.notes:
        typer.echo(f"note: {note}")


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
