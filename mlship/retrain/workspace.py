"""What one step of a retraining run hands to the next: ``retrain/MODEL/work/RUN_ID/`` in the
registry bucket.

In AWS every step runs in its own SageMaker job, so the fresh data, the fitted estimator, the
exported bundle and the small facts a later step needs (the champion judged against, the new
version) go through S3; the local runner uses the same workspace, so a run behaves the same in
both. Frames are Parquet, the estimator is a joblib pickle (written and read only by this run's
own steps in the registry bucket, never loaded from elsewhere), the bundle its ``.tar.gz``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError


class WorkspaceError(MlshipError):
    """A step needs what an earlier step of the run did not leave (or S3 refused it)."""

    kind = "retrain_workspace"


class RunWorkspace:
    """The run's objects under ``retrain/MODEL/work/RUN_ID/``, cached in memory for the local runner."""

    def __init__(self, registry: Any, model: str, run_id: str):
        self.s3, self.bucket = registry.s3, registry.bucket
        self.base = f"{registry.prefix}retrain/{model}/work/{run_id}/"
        self._cache: dict[str, Any] = {}

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.base}{name}"

    def _put(self, name: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.base + name, Body=body)

    def _read(self, name: str) -> bytes | None:
        from mlship.aws.clients import get_if_exists

        found = get_if_exists(self.s3, self.bucket, self.base + name)
        return None if found is None else found["Body"].read()

    def _get(self, name: str, wanted_by: str) -> bytes:
        body = self._read(name)
        if body is None:
            raise WorkspaceError(f"{wanted_by} needs {self.uri(name)}, which an earlier step did not write: "
                                 "run the steps in order")
        return body

    def put_frame(self, name: str, frame: Any) -> None:
        """Store a DataFrame as ``NAME.parquet``."""
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        self._put(f"{name}.parquet", buf.getvalue())
        self._cache[name] = frame

    def frame(self, name: str, wanted_by: str) -> Any:
        """The DataFrame an earlier step stored as ``NAME``."""
        import pandas as pd

        if name not in self._cache:
            self._cache[name] = pd.read_parquet(io.BytesIO(self._get(f"{name}.parquet", wanted_by)))
        return self._cache[name]

    def put_estimator(self, estimator: Any) -> None:
        import joblib

        buf = io.BytesIO()
        joblib.dump(estimator, buf)
        self._put("estimator.joblib", buf.getvalue())
        self._cache["estimator"] = estimator

    def estimator(self, wanted_by: str) -> Any:
        import joblib

        if "estimator" not in self._cache:
            self._cache["estimator"] = joblib.load(io.BytesIO(self._get("estimator.joblib", wanted_by)))
        return self._cache["estimator"]

    def put_file(self, name: str, path: Path) -> None:
        self._put(name, path.read_bytes())

    def file(self, name: str, into: Path, wanted_by: str) -> Path:
        """Download ``NAME`` to ``into`` (once) and return the local path."""
        if not into.exists():
            into.parent.mkdir(parents=True, exist_ok=True)
            into.write_bytes(self._get(name, wanted_by))
        return into

    def facts(self) -> dict[str, Any]:
        """The small values the steps share (champion, version, row counts); empty at the start."""
        if "facts" not in self._cache:
            body = self._read("facts.json")
            self._cache["facts"] = {} if body is None else json.loads(body)
        return self._cache["facts"]

    def remember(self, **values: Any) -> None:
        """Add ``values`` to the shared facts and store them."""
        facts = {**self.facts(), **values}
        self._put("facts.json", json.dumps(facts, default=str).encode())
        self._cache["facts"] = facts
