"""CloudWatch Embedded Metric Format (EMF) lines for the handler's per-request metrics.

Powertools' ``Metrics`` builds, validates and serialises a new document on every invocation (about
a third of the handler's own time once the model is fast); the metric set here is fixed (per model
and version), so the metadata part of each line is rendered once and only the values are
formatted per request. The output is the EMF CloudWatch reads: one JSON object per line with
``_aws.Timestamp``, ``_aws.CloudWatchMetrics`` (namespace, dimension set, metric names and units)
and the dimension and metric values at the top level.
"""

from __future__ import annotations

import json
import time

Metric = tuple[str, str, float]  # (name, unit, value)


class EmfWriter:
    """Renders EMF lines; the handler writes them with the request's other stdout lines (one write)."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._templates: dict[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], str] = {}

    def _template(self, dimensions: dict[str, str], metrics: list[Metric]) -> str:
        key = (tuple(dimensions.items()), tuple([(name, unit) for name, unit, _ in metrics]))
        text = self._templates.get(key)
        if text is None:
            meta = {"Namespace": self.namespace, "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics]}
            dims = json.dumps(dimensions, separators=(",", ":"))[1:-1]
            text = '"CloudWatchMetrics":[' + json.dumps(meta, separators=(",", ":")) + "]}," + dims
            if len(self._templates) < 256:  # a handful of models and versions per function
                self._templates[key] = text
        return text

    def render(self, dimensions: dict[str, str], metrics: list[Metric], timestamp_ms: int | None = None) -> str:
        """One EMF document (no newline)."""
        stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        values = "".join(f',"{name}":{float(value)!r}' for name, _, value in metrics)
        return f'{{"_aws":{{"Timestamp":{stamp},{self._template(dimensions, metrics)}{values}}}'

    def line(self, dimensions: dict[str, str], metrics: list[Metric]) -> str:
        """:meth:`render` with its newline: one log event."""
        return self.render(dimensions, metrics) + "\n"
