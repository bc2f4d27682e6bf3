"""The monitor: drift, performance with late labels and fairness of what a model serves.

``run_monitor(MonitorConfig(...))`` is what the monitor Lambda (functions/monitor) and
``mlship monitor run`` call. Imports numpy (+ scipy for p-values) and boto3 only.
"""

from mlship.monitoring.config import MonitorConfig
from mlship.monitoring.run import MonitorResult, run_monitor

__all__ = ["MonitorConfig", "MonitorResult", "run_monitor"]
