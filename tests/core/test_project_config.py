"""The project configuration as the CLI reads it (``load_project_config``) and the names it computes.

Pure Python: no CDK, no AWS. The stacks tests (tests/stacks) check that the synthesized templates
use and output exactly these names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship.config import (
    CDK_JSON_ENV,
    ConfigError,
    MlshipConfig,
    PinnedModel,
    load_config,
    load_project_config,
    project_cdk_json,
)
from mlship.errors import MlshipError
from mlship.registry.store import Registry, parse_uri

REPO = Path(__file__).resolve().parents[2]
SSM_NAME = re.compile(r"^/[a-zA-Z0-9_.\-/]{1,1010}$")  # SSM parameter names (fully qualified path)
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test starts in an empty directory with no MLSHIP_CDK_JSON."""
    monkeypatch.delenv(CDK_JSON_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def _cdk_json(path: Path, context: dict) -> Path:
    path.write_text(json.dumps({"app": "python infra/app.py", "context": context}))
    return path


def _problems(**kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project_config(**kwargs)
    return info.value.problems


def test_without_cdk_json_the_builtin_defaults_apply():
    assert project_cdk_json() is None
    cfg = load_project_config()
    assert cfg == load_config("dev", {})
    assert load_project_config("prod").endpoint.rollout.strategy == "LINEAR"


def test_reads_cdk_json_like_the_cdk_app(tmp_path):
    context = {"env": "staging", "config": "extra.json", "mlship:api.memory_mb": "2048", "mlship": {
        "common": {"model": {"name": "fraud"}, "tags": {"owner": "risk"}},
        "environments": {"staging": {"endpoint": {"name": "fraud-live"}}, "prod": {"prefix": "ml"}}}}
    (tmp_path / "extra.json").write_text(json.dumps({"batch": {"enabled": False}}))
    _cdk_json(tmp_path / "cdk.json", context)
    cfg = load_project_config()  # ./cdk.json, env from its context
    assert cfg == load_config("staging", context, base_dir=tmp_path)
    assert (cfg.env, cfg.model.name, cfg.tags, cfg.api.memory_mb, cfg.batch.enabled) == (
        "staging", "fraud", {"owner": "risk"}, 2048, False)
    assert cfg.names.endpoint_name == "fraud-live"
    assert load_project_config("prod").names.function_name == "ml-prod-predict"


def test_explicit_path_then_environment_variable_then_current_directory(tmp_path, monkeypatch):
    here = _cdk_json(tmp_path / "cdk.json", {"env": "dev"})
    other = _cdk_json(tmp_path / "other.json", {"env": "prod"})
    assert project_cdk_json() == here
    monkeypatch.setenv(CDK_JSON_ENV, str(other))
    assert project_cdk_json() == other and load_project_config().env == "prod"
    explicit = _cdk_json(tmp_path / "explicit.json", {"env": "staging"})
    assert load_project_config(cdk_json=explicit).env == "staging"
    assert load_project_config("dev", cdk_json=explicit).env == "dev"  # the argument wins over the context


def test_environment_defaults_to_dev_when_the_context_names_none(tmp_path):
    assert load_project_config(cdk_json=_cdk_json(tmp_path / "cdk.json", {})).env == "dev"
    (tmp_path / "bare.json").write_text(json.dumps({"app": "x"}))
    assert load_project_config(cdk_json=tmp_path / "bare.json").env == "dev"


def test_unreadable_or_missing_files_are_config_errors(tmp_path, monkeypatch):
    assert _problems(cdk_json=tmp_path / "nope.json") == [f"cdk.json: file {tmp_path / 'nope.json'} does not exist"]
    monkeypatch.setenv(CDK_JSON_ENV, str(tmp_path / "gone.json"))
    assert _problems() == [f"cdk.json: file {tmp_path / 'gone.json'} (from ${CDK_JSON_ENV}) does not exist"]
    (tmp_path / "bad.json").write_text("{not json")
    assert _problems(cdk_json=tmp_path / "bad.json")[0].startswith(f"cdk.json: {tmp_path / 'bad.json'} is not readable")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "must be an object" in _problems(cdk_json=tmp_path / "list.json")[0]
    assert _problems(cdk_json=_cdk_json(tmp_path / "env.json", {"env": 3})) == ["env: 3 in " + str(
        tmp_path / "env.json") + " is not an environment name"]
    assert _problems(cdk_json=_cdk_json(tmp_path / "qa.json", {"env": "qa"})) == [
        "env: unknown environment 'qa'; use one of dev, staging, prod or declare it under mlship.environments "
        "(with \"profile\": dev, staging or prod for its defaults)"]


def test_every_problem_is_named_with_its_path(tmp_path):
    path = _cdk_json(tmp_path / "cdk.json", {"mlship": {"common": {
        "model": {"uri": "mlship://churn@prod", "champion_alias": "9x"},
        "api": {"function_name": "has space", "alias": "123"},
        "endpoint": {"name": "under_score"}}}})
    with pytest.raises(ConfigError) as info:
        load_project_config(cdk_json=path)
    assert isinstance(info.value, MlshipError) and info.value.kind == "config"
    problems = info.value.problems
    assert len(problems) == 5, problems
    assert problems[0].startswith("model.uri: 'mlship://churn@prod' is a registry alias, which each cold start")
    assert any(p.startswith("model.champion_alias: '9x'") for p in problems)
    assert any(p.startswith("api.function_name: 'has space'") for p in problems)
    assert any(p.startswith("api.alias: '123'") for p in problems)
    assert any(p.startswith("endpoint.name: 'under_score'") for p in problems)
    assert str(info.value).startswith("invalid mlship config for environment 'dev':\n  - model.uri")


def test_pins_must_be_concrete_and_name_the_configured_model():
    def problems(context: dict) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load_config("dev", context)
        return info.value.problems

    assert problems({"mlship:model.uri": "mlship://fraud/3"}) == [
        "model: uri 'mlship://fraud/3' names model 'fraud', not 'churn' (model.name)"]
    assert problems({"mlship:model.uri": "s3://bucket/model/"})[0].startswith(
        "model.uri: 's3://bucket/model/': pin mlship://NAME/VERSION or s3://BUCKET/KEY.tar.gz")
    assert problems({"mlship:endpoint.variants": json.dumps([{"name": "blue", "model_uri": "mlship://churn@x"}])})[
        0].startswith("endpoint.variants.0.model_uri: 'mlship://churn@x' is a registry alias")
    assert problems({"mlship:model.challenger_alias": "champion"}) == [
        "model: champion_alias and challenger_alias are both 'champion'"]
    assert problems({"mlship:model.name": "churn_v2"}) == [
        "endpoint.name: the default 'mlship-dev-churn_v2' (from prefix, env and model.name) is not a SageMaker "
        "endpoint name (set endpoint.name)"]
    assert load_config("dev", {"mlship:model.name": "churn_v2", "mlship:endpoint.name": "churn-v2"}).names \
        .endpoint_name == "churn-v2"
    for reserved in ("MLSHIP_MODEL_VERSION", "MODEL_URI"):  # the stack sets them from the deployed model
        assert problems({"mlship:api.environment": json.dumps({reserved: "x"})}) == [
            f"api.environment: {reserved} is set by the stack from the rest of the config"]


def test_names_from_the_defaults():
    names = load_config("prod", {}).names
    assert names.outputs() == {
        "endpoint_name": "mlship-prod-churn", "function_name": "mlship-prod-predict", "function_alias": "live",
        "codedeploy_application": "mlship-prod-predict", "codedeploy_deployment_group": "mlship-prod-predict",
        "endpoint_alarms": {"errors_5xx": "mlship-prod-endpoint-5xx", "latency_p99": "mlship-prod-endpoint-latency",
                            "model_quality": "mlship-prod-model-quality",
                            "performance_degraded": "mlship-prod-performance-degraded"},
        "lambda_alarms": {"errors": "mlship-prod-predict-errors", "duration_p99": "mlship-prod-predict-latency"},
        "deployed_bundle_parameter": "/mlship/prod/churn/deployed/bundle-uri",
        "deployed_version_parameter": "/mlship/prod/churn/deployed/version",
        "champion_alias": "champion", "challenger_alias": "challenger"}
    assert names.bucket("123456789012", "eu-west-1") == "mlship-prod-data-123456789012-eu-west-1"
    assert names.log_bucket("123456789012", "eu-west-1") == "mlship-prod-access-logs-123456789012-eu-west-1"
    assert names.champion_uri == "mlship://churn@champion"
    assert names.log_group(names.function_name) == "/aws/lambda/mlship-prod-predict"
    assert names.monitor_function_name == "mlship-prod-monitor"
    assert json.loads(json.dumps(names.outputs())) == names.outputs()


def test_names_follow_the_overrides():
    cfg = load_config("staging", {"mlship": {"common": {
        "prefix": "acme", "model": {"name": "fraud", "champion_alias": "prod", "challenger_alias": "next"},
        "endpoint": {"name": "fraud-rt"}, "api": {"function_name": "fraud-score", "alias": "stable"}}}})
    names = cfg.names
    assert (names.endpoint_name, names.function_name, names.function_alias) == ("fraud-rt", "fraud-score", "stable")
    assert names.champion_uri == "mlship://fraud@prod"
    assert names.deployed_bundle_parameter == "/acme/staging/fraud/deployed/bundle-uri"
    assert names.endpoint_alarms["errors_5xx"] == "acme-staging-endpoint-5xx"
    assert names.codedeploy_application == "acme-staging-predict"


def test_the_default_endpoint_name_is_cut_to_63_characters_without_a_trailing_hyphen():
    # 63rd character of "mlship-dev-" + name is a hyphen: SageMaker names may not end with one
    name = "a" * 51 + "-bcdef"
    cfg = load_config("dev", {"mlship:model.name": name})
    assert cfg.names.endpoint_name == ("mlship-dev-" + name)[:62]
    assert ENDPOINT_NAME.match(cfg.names.endpoint_name)


def test_pinned_model_precedence():
    default = load_config("dev", {})
    assert default.names.pinned_model("data") is None  # serve the deployed parameters
    registry = load_config("dev", {"mlship:model.uri": "mlship://churn/7"})
    assert registry.names.pinned_model("data") == PinnedModel("s3://data/models/churn/7/bundle.tar.gz", "7", "churn")
    tarball = load_config("dev", {"mlship:model.uri": "mlship://churn/7",
                                  "mlship:model.model_data_url": "s3://elsewhere/churn-7.tar.gz"})
    assert tarball.names.pinned_model("data") == PinnedModel("s3://elsewhere/churn-7.tar.gz", "7")
    only_s3 = load_config("dev", {"mlship:model.uri": "s3://elsewhere/x/bundle.tar.gz"})
    assert only_s3.names.pinned_model("data") == PinnedModel("s3://elsewhere/x/bundle.tar.gz", None)
    # a variant's own pin wins over the model section
    assert tarball.names.pinned_model("data", "mlship://fraud/2") == PinnedModel(
        "s3://data/models/fraud/2/bundle.tar.gz", "2", "fraud")  # a variant may serve another model


_REGISTRY_NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,40}\Z")


@given(name=_REGISTRY_NAME, version=_REGISTRY_NAME)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_pinned_registry_version_is_the_bundle_the_registry_stores(name, version):
    """The config's URI grammar and bundle layout agree with mlship.registry.store."""
    cfg = load_config("dev", {"mlship": {"common": {"model": {"name": name, "uri": f"mlship://{name}/{version}"},
                                                    "endpoint": {"name": "pinned"}}}})
    ref = parse_uri(f"mlship://{name}/{version}")
    expected = Registry("data-bucket", prefix="", sagemaker=False).bundle_uri(ref.name, ref.version)
    assert cfg.names.pinned_model("data-bucket") == PinnedModel(expected, version, name)


@given(name=_REGISTRY_NAME, prefix=st.from_regex(r"\A[a-z][a-z0-9-]{0,30}\Z"))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_registry_model_name_gives_valid_parameter_names_or_a_named_error(name, prefix):
    try:
        cfg = load_config("prod", {"mlship": {"common": {"model": {"name": name}, "prefix": prefix}}})
    except ConfigError as exc:  # only the derived endpoint name can be invalid
        assert [p.split(":")[0] for p in exc.problems] == ["endpoint.name"]
        return
    for parameter in (cfg.names.deployed_bundle_parameter, cfg.names.deployed_version_parameter):
        assert SSM_NAME.match(parameter) and parameter.count("/") <= 15
    assert ENDPOINT_NAME.match(cfg.names.endpoint_name)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=12)
_SECTIONS = st.sampled_from(["model", "endpoint", "api", "monitoring", "batch", "edge", "storage", "prefix",
                             "env", "environments", "common", "rollout"])


@given(doc=st.one_of(_JSON, st.fixed_dictionaries({"context": st.dictionaries(
    st.sampled_from(["env", "mlship", "config", "mlship:model.uri", "mlship:endpoint.rollout"]),
    st.one_of(_JSON, st.dictionaries(_SECTIONS, st.one_of(_JSON, st.dictionaries(_SECTIONS, _JSON, max_size=3)),
                                     max_size=4)), max_size=3)})))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_cdk_json_gives_a_config_or_a_config_error(tmp_path, doc):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    try:
        cfg = load_project_config(cdk_json=path)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(cfg, MlshipConfig)


def test_the_repository_cdk_json_loads_for_every_environment():
    for env in ("dev", "staging", "prod"):
        cfg = load_project_config(env, cdk_json=REPO / "cdk.json")
        assert cfg.names.endpoint_name == f"mlship-{env}-churn"
        assert cfg.model.uri is None  # serves what the last rollout deployed
