"""What the batch job reads from its environment (its inputs are command-line arguments).

Stdlib-only (``EnvSettings``), not pydantic-settings: ``batch/score.py`` runs on the EMR
Serverless driver, whose dependencies archive (``batch/emr.py`` ``WORKER_REQUIREMENTS``) holds
the runtime tier, pandas, pyarrow, scipy and boto3, but no pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlship.runtime.settings import EnvSettings, setting


@dataclass(frozen=True, kw_only=True)
class BatchSettings(EnvSettings):
    """The Spark scoring job's environment; ``--master`` / ``--public-key`` win over it."""

    spark_master: str | None = setting(
        "MLSHIP_SPARK_MASTER", None,
        doc="Spark master when --master is not given (default: spark-submit's, or local[*] under python)")
    spark_submit_gateway: int | None = setting(
        "PYSPARK_GATEWAY_PORT", None, minimum=1, maximum=65535,
        doc="set by spark-submit; when present the job leaves the master to spark-submit")
    public_key: str | None = setting(
        "MLSHIP_PUBLIC_KEY", None, doc="PEM text or path: require a valid bundle signature (like --public-key)")
    worker_python: str | None = setting(
        "PYSPARK_PYTHON", None, doc="Python of the Spark workers (default: the job's interpreter)")
    driver_python: str | None = setting(
        "PYSPARK_DRIVER_PYTHON", None, doc="Python of the Spark driver (default: the job's interpreter)")

    def master(self, given: str | None) -> str | None:
        """The master to ask for: ``given``, else the variable, else spark-submit's, else ``local[*]``."""
        if given or self.spark_master:
            return given or self.spark_master
        return None if self.spark_submit_gateway is not None else "local[*]"
