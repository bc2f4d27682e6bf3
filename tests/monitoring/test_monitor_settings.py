"""The monitor Lambda's settings: parsed from the environment, errors name the variable."""

from __future__ import annotations

import pytest

from mlship.monitoring import MonitorConfig
from mlship.monitoring.settings import MonitorSettings
from mlship.runtime.settings import SettingsError

REQUIRED = {"MODEL_URI": "s3://b/bundles/churn-1.tar.gz", "RECORDS_BUCKET": "records"}


def _error(**extra: str) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        MonitorSettings.from_env({**REQUIRED, **extra})
    return caught.value


def test_defaults_match_the_run_configuration() -> None:
    config = MonitorSettings.from_env(REQUIRED).to_config()
    expected = MonitorConfig(model_uri=REQUIRED["MODEL_URI"], records_bucket="records", reports_bucket="records")
    assert config == expected


def test_every_variable_reaches_the_configuration() -> None:
    config = MonitorSettings.from_env({
        **REQUIRED, "REPORTS_BUCKET": "reports", "RECORDS_PREFIX": "rec", "LABELS_PREFIX": "lab",
        "REPORTS_PREFIX": "rep", "EVENT_BUS_NAME": "bus", "WINDOW_HOURS": "6", "LABEL_WINDOW_HOURS": "48",
        "SENSITIVE_ATTRIBUTE": "gender", "POWERTOOLS_METRICS_NAMESPACE": "ns", "RECORDS_LAYOUT": "data-capture",
        "DRIFT_THRESHOLDS": '{"share": 0.3}', "PRIMARY_METRIC": "auc", "PERFORMANCE_TOLERANCE": "0.1",
        "MIN_LABELLED_ROWS": "10", "FAIRNESS_THRESHOLD": "0.3", "METRICS_MODE": "both",
        "ATTRIBUTION_SAMPLE_ROWS": "200", "ATTRIBUTION_THRESHOLD": "0.08",
    }).to_config()
    assert (config.reports_bucket, config.records_prefix, config.labels_prefix) == ("reports", "rec", "lab")
    assert (config.reports_prefix, config.event_bus_name, config.namespace) == ("rep", "bus", "ns")
    assert (config.window_hours, config.label_window_hours, config.sensitive_attribute) == (6.0, 48.0, "gender")
    assert (config.layout, config.thresholds, config.primary_metric) == ("data-capture", {"share": 0.3}, "auc")
    assert (config.performance_tolerance, config.min_labelled_rows) == (0.1, 10)
    assert (config.fairness_threshold, config.metrics_mode) == (0.3, "both")
    assert (config.attribution_sample_rows, config.attribution_threshold) == (200, 0.08)


def test_empty_optional_variables_keep_their_defaults() -> None:
    config = MonitorSettings.from_env({**REQUIRED, "REPORTS_BUCKET": "", "SENSITIVE_ATTRIBUTE": "",
                                       "DRIFT_THRESHOLDS": ""}).to_config()
    assert (config.reports_bucket, config.sensitive_attribute, config.thresholds) == ("records", None, {})


@pytest.mark.parametrize("missing", ["MODEL_URI", "RECORDS_BUCKET"])
def test_missing_required_variable_is_named(missing: str) -> None:
    environ = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(SettingsError) as caught:
        MonitorSettings.from_env(environ)
    assert caught.value.variable == missing and caught.value.value is None


@pytest.mark.parametrize(("variable", "value"), [
    ("WINDOW_HOURS", "an hour"), ("WINDOW_HOURS", "0"), ("MIN_LABELLED_ROWS", "many"),
    ("METRICS_MODE", "prometheus"), ("RECORDS_LAYOUT", "flat"), ("PERFORMANCE_TOLERANCE", "-1"),
    ("ATTRIBUTION_SAMPLE_ROWS", "-1"), ("ATTRIBUTION_THRESHOLD", "0"), ("ATTRIBUTION_THRESHOLD", "1.5"),
    ("DRIFT_THRESHOLDS", "{not json"), ("DRIFT_THRESHOLDS", "[1]"), ("DRIFT_THRESHOLDS", '{"sharee": 0.3}'),
])
def test_bad_value_is_named_with_its_value(variable: str, value: str) -> None:
    error = _error(**{variable: value})
    assert (error.variable, error.value) == (variable, value)
    assert str(error).startswith(f"environment variable {variable}={value!r} is invalid: expected ")


def test_unknown_threshold_key_message_lists_the_known_ones() -> None:
    assert "unknown drift threshold settings" in str(_error(DRIFT_THRESHOLDS='{"sharee": 0.3}'))


def test_describe_names_every_variable_once() -> None:
    rows = MonitorSettings.describe()
    names = [row.env for row in rows]
    assert len(names) == len(set(names)) == len(MonitorSettings.model_fields)
    assert {row.env for row in rows if row.required} == set(REQUIRED)
    assert next(row for row in rows if row.env == "WINDOW_HOURS").default == "1.0"


def test_handler_fails_the_invocation_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.monitor import handler as module

    for key, value in {**REQUIRED, "WINDOW_HOURS": "soon"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match="WINDOW_HOURS='soon'"):
        module._config()
