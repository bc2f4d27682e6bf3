"""Demo step 1: synthetic churn data -> pipeline -> signed bundle -> verify -> local S3 -> predict."""

from __future__ import annotations

import joblib
from rich.table import Table

from demo.context import DemoContext
from mlship.aws.clients import client
from mlship.evaluation.export import export_bundle
from mlship.local.datasets import CHURN_LABEL, CHURN_SENSITIVE, make_churn
from mlship.local.train import split, train_pipeline
from mlship.runtime.predictor import Predictor
from mlship.runtime.signing import generate_keypair, load_public_key
from mlship.runtime.sources import open_bundle


def run(ctx: DemoContext) -> None:
    ctx.step("1. Foundation: train, export, sign, verify, upload, predict")
    con = ctx.console
    df = make_churn(10_000, seed=7)
    train, holdout = split(df)
    data_dir = ctx.workdir / "data"
    data_dir.mkdir()
    holdout_path = data_dir / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    train.to_parquet(data_dir / "train.parquet")
    con.print(f"synthetic churn data: {len(train)} train / {len(holdout)} holdout rows -> {data_dir}")

    model = train_pipeline(train, "hgb")
    joblib.dump(model, ctx.workdir / "model.joblib")
    con.print("trained ColumnTransformer(impute+scale, one-hot) + HistGradientBoostingClassifier")

    key_dir = ctx.workdir / "keys"
    private, public = generate_keypair(key_dir)
    con.print(f"signing keys: {private} / {public}   (mlship keygen)")

    bundle_dir = export_bundle(model, holdout, CHURN_LABEL, ctx.workdir / "bundles" / "churn-1", name="churn",
                               version="1", private_key=private, sensitive=CHURN_SENSITIVE, train=train, cv=3,
                               description="Churn classifier (demo)", data_path=holdout_path,
                               progress=lambda m: con.log(m))
    bundle = open_bundle(bundle_dir)
    notes = bundle.verify(public_key=load_public_key(public))
    con.print(f"verified {bundle.name}:{bundle.version}: {len(bundle.manifest['files'])} files, "
              f"signature OK {notes or ''}   (mlship verify --public-key)")
    parity = bundle.manifest["parity"]
    con.print(f"parity sklearn vs onnxruntime: max diff {parity['max_abs_diff']:.2e}, "
              f"{parity['rows_over_tolerance']}/{parity['rows']} rows over {parity['tolerance']:g}, "
              f"label agreement {parity['label_agreement']:.4f}")

    tarball = bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    key = "bundles/churn/1/bundle.tar.gz"
    client("s3").upload_file(str(tarball), ctx.bucket, key)
    uri = f"s3://{ctx.bucket}/{key}"
    con.print(f"uploaded to local S3: {uri}")

    predictor = Predictor.load(uri, public_key=public)
    sample = holdout.drop(columns=[CHURN_LABEL]).head(5)
    result = predictor.predict(sample.to_dict(orient="records"))
    table = Table(title=f"predictions from {uri} (model {result.model_name}:{result.model_version})")
    for col in ("tenure_months", "monthly_charges", "contract", "prediction", "P(churn)"):
        table.add_column(col)
    for rec, lbl, prob in zip(sample.to_dict(orient="records"), result.labels, result.probabilities, strict=True):
        table.add_row(str(rec["tenure_months"]), f"{rec['monthly_charges']:.2f}", rec["contract"], str(lbl),
                      f"{prob[1]:.3f}")
    con.print(table)
    metrics = bundle.manifest["metrics"]["holdout"]
    con.print(f"holdout: accuracy {metrics['accuracy']:.3f}, ROC-AUC {metrics['roc_auc']:.3f}, "
              f"F1 {metrics['f1']:.3f}")
    con.print(f"model card: {bundle_dir / 'model_card.html'}")
    ctx.data.update({"bundle_dir": bundle_dir, "bundle_tar": tarball, "bundle_uri": uri,
                     "holdout_path": holdout_path, "key_dir": key_dir, "public_key": public,
                     "private_key": private, "train_df": train, "holdout_df": holdout,
                     "model_path": ctx.workdir / "model.joblib"})
