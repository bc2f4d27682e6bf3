"""The Spark session for batch runs (local ``local[*]`` here, the cluster's master on EMR)."""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.python.worker.reuse": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}


def get_session(master: str | None = "local[*]", app_name: str = "mlship-batch",
                conf: dict[str, str] | None = None) -> Any:
    """Create (or reuse) a SparkSession; workers use this interpreter unless PYSPARK_PYTHON is set.

    ``master=None`` leaves the master to ``spark-submit`` (EMR Serverless sets it).
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
