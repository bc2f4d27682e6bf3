"""mlship's batch path: score a dataset with a bundle on Spark, quarantine what cannot be scored,
commit each run atomically (``mlship batch run``; EMR Serverless with ``mlship batch submit``).

    import mlship.batch
    summary = mlship.batch.run("mlship://churn@champion", "s3://b/landing/", "s3://b/scores/", "2026-12-01")
"""

from __future__ import annotations

from typing import Any


def run(model: str, input: str, output: str, run_id: str, *, spark: Any = None,  # noqa: A002
        **options: Any) -> dict[str, Any]:
    """Score ``input`` with ``model`` into ``output/run_id`` (``mlship batch run``); ``options`` are
    :class:`mlship.batch.job.JobConfig`'s (``format``, ``id_column``, ``master``, ``drift``, ...) and
    ``spark`` an existing session to use. Returns the run's summary (rows scored and quarantined,
    their reasons, drift, where the output went)."""
    from mlship.batch.job import JobConfig, run_job

    return run_job(JobConfig(model=model, input=input, output=output, run_id=run_id, **options), spark=spark)
