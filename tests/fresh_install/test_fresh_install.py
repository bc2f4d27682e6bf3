"""The wheel in fresh venvs outside the repository, as a user installs it.

(a) the core install (``pip install mlship``) is below 400 MB and verifies, inspects, predicts
and serves a bundle; (b) a command whose extra is missing says which one in one line (exit 2);
(c) with ``[export,aws,local]``: export, register (moto server of that venv), predict from the
registry and ``mlship package predict``, all from a folder outside the checkout; (d) with
``[cdk]`` too: a project from ``mlship init`` synthesizes every environment (cdk-nag on) and its
deploy rehearsal (``mlship local deploy``, the real CDK CLI against that venv's local AWS) creates
its stacks. The venvs are built once per session (``fresh.py``: the wheel is cached per content hash;
session scope, because xdist may interleave other modules' tests, which would tear a
module-scoped venv down and build it again); (c) and (d) share one venv.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fresh_install.fresh import REPO, Venv, cached_wheel, dir_size, make_venv, run

pytestmark = [pytest.mark.xdist_group("fresh-install"), pytest.mark.timeout(1800)]
# the core venv's tests are a group of their own: its venv and the full one are built on two workers at once
CORE = pytest.mark.xdist_group("fresh-install-core")
CORE_LIMIT = 400 * 1024 * 1024
HINT = "error: mlship {command} needs the '{extra}' extra: pip install 'mlship[{extra}]'"


@pytest.fixture(scope="session")
def wheel() -> Path:
    return cached_wheel()


@pytest.fixture(scope="session")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder outside the checkout (the venvs' commands run here)."""
    folder = tmp_path_factory.mktemp("user-project")
    assert not folder.resolve().is_relative_to(REPO)
    yield folder
    shutil.rmtree(folder / "lambda-project", ignore_errors=True)  # a 150 MB Lambda asset


@pytest.fixture(scope="session")
def core(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venvs") / "core", wheel)
    print(f"\ncore venv installed in {venv.seconds:.0f} s")
    yield venv
    shutil.rmtree(venv.root, ignore_errors=True)  # pytest keeps the last temp folders: 230 MB each


@pytest.fixture(scope="session")
def full(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Venv]:
    venv = make_venv(tmp_path_factory.mktemp("venvs") / "export-aws-local-cdk", wheel, "export,aws,local,cdk",
                     compile_pyc=False)
    print(f"\n[export,aws,local,cdk] venv installed in {venv.seconds:.0f} s")
    yield venv
    shutil.rmtree(venv.root, ignore_errors=True)  # 1.3 GB


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory, churn_model: Any, churn_split: tuple[Any, Any]) -> dict[str, Path]:
    """The churn pipeline (joblib), its holdout and three unlabelled rows as CSV files."""
    import joblib

    folder = tmp_path_factory.mktemp("inputs")
    holdout = churn_split[1]
    joblib.dump(churn_model, folder / "model.joblib")
    holdout.to_csv(folder / "holdout.csv", index=False)
    holdout.head(3).drop(columns=["churned"]).to_csv(folder / "rows.csv", index=False)
    return {"model": folder / "model.joblib", "holdout": folder / "holdout.csv", "rows": folder / "rows.csv"}


# ------------------------------------------------------------------------------------- (a) core
@CORE
def test_core_install_is_the_runtime_and_the_cli(core: Venv, outside: Path):
    size = dir_size(core.site_packages())
    print(f"\ncore site-packages: {size / 2**20:.0f} MiB")
    assert size < CORE_LIMIT
    probe = run([str(core.bin / "python"), "-c", "import importlib.util as u, mlship; print(mlship.__file__); "
                 "print([m for m in ('sklearn', 'pandas', 'boto3', 'pyspark', 'aws_cdk', 'moto', 'scipy') "
                 "if u.find_spec(m)])"], env=core.env(), cwd=outside)
    location, optional = probe.stdout.split("\n")[:2]
    assert Path(location).is_relative_to(core.root)  # the installed package, not the checkout
    assert optional == "[]"
    assert core.mlship("--help", cwd=outside).returncode == 0
    assert "--install-completion" in core.mlship("--help", cwd=outside, COLUMNS="200").stdout


@CORE
def test_core_verifies_inspects_and_predicts_a_bundle(core: Venv, outside: Path, churn_bundle: Path,
                                                      signing_keys: Path, inputs: dict[str, Path]):
    verified = core.mlship("verify", str(churn_bundle), "--public-key", str(signing_keys / "mlship.pub"), cwd=outside)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK churn:1") and "signature valid" in verified.stdout
    inspected = core.mlship("inspect", str(churn_bundle), cwd=outside)
    assert json.loads(inspected.stdout)["name"] == "churn"
    predicted = core.mlship("predict", str(churn_bundle), str(inputs["rows"]), cwd=outside)
    assert predicted.returncode == 0, predicted.stderr
    assert len(json.loads(predicted.stdout)["predictions"]) == 3


@CORE
def test_the_installed_package_ships_its_run_time_files(core: Venv, outside: Path):
    """The Dockerfile, constraints and handler sources come from the package; the serving image's
    context is staged from the installed package (a user's CDK app has no checkout)."""
    from mlship.resources import SHIPPED

    data = core.site_packages() / "mlship" / "_data"
    for rel in SHIPPED:
        assert (data / rel).exists(), rel
    assert (data / "functions" / "predict" / "requirements.txt").is_file()
    script = ("from mlship.deploy.serving_image import serving_image_context; "
              "from mlship.resources import data_path; c = serving_image_context(); "
              "print(c.directory); print(data_path('functions'))")
    done = run([str(core.bin / "python"), "-c", script], env=core.env(), cwd=outside)
    context, functions = (Path(line) for line in done.stdout.split())
    assert context == outside / "build" / "serving-image" and functions == data / "functions"
    assert (context / "Dockerfile").read_text() == (REPO / "Dockerfile").read_text()
    assert (context / "mlship" / "serving" / "requirements.txt").is_file()
    assert (context / "mlship" / "serving" / "server.py").is_file()
    assert not (context / "mlship" / "_data").exists() and not (context / "mlship" / "batch").exists()


@pytest.fixture
def served(core: Venv, outside: Path, churn_bundle: Path) -> Iterator[str]:
    from mlship.local.environment import free_port

    port = free_port()
    proc = subprocess.Popen([str(core.bin / "mlship"), "serve", str(churn_bundle), "--port", str(port),
                             "--workers", "1"], env=core.env(), cwd=outside, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield _wait_for(f"http://127.0.0.1:{port}", "/ping", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _wait_for(base: str, path: str, proc: subprocess.Popen[str], limit: float = 90) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(base + path, timeout=5) as answer:
                if answer.status == 200:
                    return base
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise AssertionError(f"{base}{path} did not answer within {limit:.0f} s")


@CORE
def test_core_serves_ping_and_invocations(served: str, inputs: dict[str, Path], churn_model: Any,
                                          churn_split: tuple[Any, Any]):
    request = urllib.request.Request(f"{served}/invocations", data=inputs["rows"].read_bytes(),
                                     headers={"Content-Type": "text/csv"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        body = json.loads(answer.read())
    expected = churn_model.predict(churn_split[1].head(3).drop(columns=["churned"]))
    assert body["predictions"] == [int(v) for v in expected]
    assert body["model"] == {"name": "churn", "version": "1"}


# ---------------------------------------------------------------------------- (b) missing extras
HINTS = [
    ("export", "export", lambda i: ["export", str(i["model"]), str(i["holdout"]), "--label", "churned",
                                    "--name", "churn", "--out", str(i["out"])]),
    ("evaluate", "export", lambda i: ["evaluate", str(i["bundle"]), "--data", str(i["holdout"])]),
    ("drift", "monitor", lambda i: ["drift", str(i["bundle"]), str(i["rows"])]),
    ("abtest analyze", "monitor", lambda i: ["abtest", "analyze", "--data", str(i["rows"])]),
    ("register", "aws", lambda i: ["register", str(i["bundle"]), "--bucket", "registry"]),
    ("models list", "aws", lambda i: ["models", "list", "--bucket", "registry"]),
    ("upload", "aws", lambda i: ["upload", str(i["bundle"]), "s3://registry/bundle.tar.gz"]),
    ("batch run", "spark", lambda i: ["batch", "run", "--model", str(i["bundle"]), "--input", str(i["rows"]),
                                      "--output", str(i["out"]), "--run-id", "r1"]),
    ("loadtest", "loadtest", lambda i: ["loadtest", "http://127.0.0.1:9/", "--rate", "1", "--p99-ms", "100",
                                        "--model", str(i["bundle"])]),
    ("local up", "local", lambda i: ["local", "up"]),
    ("init", "cdk", lambda i: ["init", str(i["out"])]),
]


@CORE
@pytest.mark.parametrize(("command", "extra", "argv"), HINTS, ids=[h[0] for h in HINTS])
def test_a_missing_extra_is_one_line_naming_it(core: Venv, outside: Path, inputs: dict[str, Path],
                                              churn_bundle: Path, command: str, extra: str, argv: Any):
    args = argv({**inputs, "bundle": churn_bundle, "out": outside / "out"})
    done = core.mlship(*args, cwd=outside)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [HINT.format(command=command, extra=extra)]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (outside / "out").exists()


@CORE
def test_the_construct_library_names_the_missing_extra(core: Venv, outside: Path):
    code = ("import mlship.extras\ntry:\n    import mlship.cdk\nexcept mlship.extras.MissingExtra as exc:\n"
            "    print(exc)\n")
    done = run([str(core.bin / "python"), "-c", code], env=core.env(), cwd=outside, timeout=120)
    assert done.stdout.strip() == ("mlship.cdk needs the 'cdk' extra: pip install 'mlship[cdk]' "
                                   "(aws_cdk is not installed)")


@CORE
def test_the_python_api_names_the_missing_extra(core: Venv, outside: Path, inputs: dict[str, Path]):
    code = ("import mlship\n"
            "try:\n"
            f"    mlship.export({str(inputs['model'])!r}, {str(inputs['holdout'])!r}, label='churned', out='o', "
            "name='churn')\n"
            "except mlship.MissingExtra as exc:\n"
            "    print(exc)\n")
    done = run([str(core.bin / "python"), "-c", code], env=core.env(), cwd=outside, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mlship.export needs the 'export' extra: pip install 'mlship[export]'"), done.stdout


# -------------------------------------------------------------------- (c) [export,aws,local]
@pytest.fixture(scope="session")
def moto_of_full(full: Venv, outside: Path) -> Iterator[str]:
    """A moto server started from the [export,aws,local] venv, with a registry bucket."""
    from mlship.local.environment import free_port

    port = free_port()
    proc = subprocess.Popen([str(full.bin / "python"), "-m", "moto.server", "-H", "localhost", "-p", str(port)],
                            env=full.env(), cwd=outside, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        url = _wait_for(f"http://localhost:{port}", "/moto-api/", proc)
        run([str(full.bin / "python"), "-c", "import boto3; boto3.client('s3').create_bucket(Bucket='registry')"],
            env=full.env(AWS_ENDPOINT_URL=url), cwd=outside)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_export_register_predict_outside_the_repo(full: Venv, moto_of_full: str, outside: Path,
                                                 inputs: dict[str, Path], signing_keys: Path):
    project = outside / "flow"
    project.mkdir()
    aws = {"AWS_ENDPOINT_URL": moto_of_full}
    exported = full.mlship("export", str(inputs["model"]), str(inputs["holdout"]), "--label", "churned",
                           "--name", "churn", "--version", "7", "--out", "bundles/churn-7", "--sensitive", "gender",
                           "--key", str(signing_keys / "mlship.key"), "--json", cwd=project, timeout=600)
    assert exported.returncode == 0, exported.stderr
    assert (project / "bundles" / "churn-7" / "manifest.json").is_file()
    registered = full.mlship("register", "bundles/churn-7", "--bucket", "registry", "--public-key",
                             str(signing_keys / "mlship.pub"), "--json", cwd=project, **aws)
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["version"] == "7"
    predicted = full.mlship("predict", "mlship://churn/7?bucket=registry", str(inputs["rows"]), cwd=project, **aws)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["model"] == {"name": "churn", "version": "7"}


API_FLOW = """
import json, sys
import pandas as pd
import mlship

model, holdout, key, pub = sys.argv[1:5]
exported = mlship.export(model, holdout, label="churned", out="bundles/churn-8", name="churn", version="8", key=key)
registered = mlship.register(exported.path, bucket="registry", public_key=pub)
predictor = mlship.Predictor.load("mlship://churn/8?bucket=registry", public_key=pub)
rows = pd.read_csv(holdout).head(3).drop(columns=["churned"]).to_dict("records")
print(json.dumps({"exported": json.loads(exported.to_json())["version"], "registered": registered.version,
                  "predictions": [int(v) for v in predictor.predict(rows).labels]}))
"""


def test_the_python_api_exports_registers_and_predicts_outside_the_repo(full: Venv, moto_of_full: str, outside: Path,
                                                                       inputs: dict[str, Path], signing_keys: Path,
                                                                       churn_model: Any, churn_split: tuple[Any, Any]):
    project = outside / "notebook"
    project.mkdir()
    done = run([str(full.bin / "python"), "-c", API_FLOW, str(inputs["model"]), str(inputs["holdout"]),
                str(signing_keys / "mlship.key"), str(signing_keys / "mlship.pub")],
               env=full.env(AWS_ENDPOINT_URL=moto_of_full), cwd=project, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = churn_model.predict(churn_split[1].head(3).drop(columns=["churned"]))
    assert result == {"exported": "8", "registered": "8", "predictions": [int(v) for v in expected]}


def test_package_predict_outside_the_repo(full: Venv, outside: Path):
    project = outside / "lambda-project"
    project.mkdir()
    done = full.mlship("package", "predict", cwd=project, timeout=900)
    assert done.returncode == 0, done.stderr
    asset = project / "build" / "lambda" / "predict"
    assert (asset / "handler.py").is_file() and (asset / "capture.py").is_file()
    assert (asset / "mlship" / "runtime" / "predictor.py").is_file()
    assert (asset / "onnxruntime").is_dir()
    record = json.loads((project / "build" / "lambda" / "predict.json").read_text())
    assert "onnxruntime==1.32.0" in record["requirements"]


# --------------------------------------------------------------- (d) mlship init, with [cdk]
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-serve:rehearsal"
REHEARSAL = ["-c", "mlship:assets.lambda_code=source", "-c", f"mlship:endpoint.image_uri={IMAGE}"]


@pytest.fixture(scope="session")
def scaffolded(full: Venv, outside: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project from ``mlship init`` with its own local AWS (state outside the checkout), torn down after."""
    if not CDK_CLI.is_file():
        pytest.skip("CDK CLI not installed (npm ci)")
    project = outside / "ml-project"
    created = full.mlship("init", str(project), "--model", "churn", cwd=outside)
    assert created.returncode == 0, created.stderr
    env = {"MLSHIP_LOCAL_HOME": str(outside / "local-aws"), "MLSHIP_CDK_CLI": str(CDK_CLI)}
    try:
        yield project, env
    finally:
        full.mlship("local", "down", cwd=project, **env)


def test_init_writes_a_project_and_refuses_a_folder_in_use(full: Venv, scaffolded: tuple[Path, dict[str, str]]):
    project, _ = scaffolded
    assert sorted(p.name for p in project.iterdir()) == [".gitignore", "README.md", "app.py", "cdk.json", "train.py"]
    context = json.loads((project / "cdk.json").read_text())["context"]
    assert context["mlship"]["common"]["model"] == {"name": "churn"}
    assert context["@aws-cdk/aws-iam:minimizePolicies"] is True  # the feature flags mlship is tested with
    again = full.mlship("init", str(project), cwd=project.parent)
    assert again.returncode == 2 and "is not an empty folder" in again.stderr
    bad = full.mlship("init", str(project.parent / "other"), "--model", "no spaces", cwd=project.parent)
    assert bad.returncode == 2 and "model.name" in bad.stderr and not (project.parent / "other").exists()


def test_an_init_project_synthesizes_every_environment_outside_the_repo(full: Venv,
                                                                      scaffolded: tuple[Path, dict[str, str]]):
    project, env = scaffolded
    for environment in ("dev", "prod"):
        done = run([str(CDK_CLI), "synth", "--quiet", "--no-notices", "--output", f"cdk.out/{environment}",
                    "-c", f"env={environment}", "-c", "mlship:assets.lambda_code=source",
                    "-c", "mlship:batch.dependencies_archive=s3://artifacts-example/mlship-batch-deps.tar.gz"],
                   env=full.env(**env, CDK_DISABLE_VERSION_CHECK="1",
                                JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="1"), cwd=project, timeout=300)
        assert "AwsSolutions-" not in done.stdout + done.stderr  # cdk-nag ran and found nothing unacknowledged
        stacks = sorted(p.name for p in (project / "cdk.out" / environment).glob("*.template.json"))
        assert stacks == [f"Mlship-{environment}-Registry.template.json", f"Mlship-{environment}-Serving.template.json"]
        serving = json.loads((project / "cdk.out" / environment / stacks[1]).read_text())["Resources"]
        kinds = {r["Type"] for r in serving.values()}
        assert {"AWS::Lambda::Function", "AWS::SageMaker::Endpoint", "AWS::CodeDeploy::DeploymentGroup",
                "AWS::EMRServerless::Application", "AWS::IoT::ThingGroup"} <= kinds
        assert ("AWS::Scheduler::Schedule" in kinds) == (environment == "prod")  # dev scores on demand
    refused = run([str(CDK_CLI), "synth", "--quiet", "--no-notices", "-c", "env=staging",
                   "-c", "mlship:batch.build_dependencies=false", "-c", "mlship:assets.lambda_code=source"],
                  env=full.env(**env, CDK_DISABLE_VERSION_CHECK="1", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="1"),
                  cwd=project, timeout=300, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "batch.dependencies_archive: a scheduled batch job needs" in refused.stderr
    # the serving image's context came from the installed package: the project has no Dockerfile
    assert (project / "build" / "serving-image" / "Dockerfile").is_file()
    assert not (project / "Dockerfile").exists()


def test_an_init_project_trains_registers_and_deploy_rehearses(full: Venv, scaffolded: tuple[Path, dict[str, str]]):
    import boto3

    from mlship.config import load_config
    from mlship.local.environment import free_port

    project, env = scaffolded
    steps = [["keygen"], ["local", "up", "--no-data-bucket", "--no-plane", "--port", str(free_port())]]
    for step in steps:
        done = full.mlship(*step, cwd=project, **env)
        assert done.returncode == 0, done.stderr
    trained = run([str(full.bin / "python"), "train.py", "--key", "keys/mlship.key"], env=full.env(**env),
                  cwd=project, timeout=600)
    assert json.loads(trained.stdout)["signed"] is True
    exports = dict(line.removeprefix("export ").split("=", 1) for line in
                   full.mlship("local", "env", cwd=project, **env).stdout.split("\n") if line)
    aws = {**env, **{k: v.strip("'") for k, v in exports.items()}}

    first = full.mlship("local", "deploy", "Mlship-dev-Registry", *REHEARSAL, "--json", cwd=project, timeout=600, **aws)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout)["stacks"] == {"Mlship-dev-Registry": "CREATE_COMPLETE"}
    unpinned = full.mlship("local", "deploy", *REHEARSAL, cwd=project, timeout=600, **aws)
    assert unpinned.returncode == 1 and "mlship rollout pin --model churn/VERSION" in unpinned.stderr
    for step in (["register", "bundles/churn-1", "--public-key", "keys/mlship.pub"],
                 ["rollout", "pin", "--model", "churn/1"]):
        done = full.mlship(*step, cwd=project, **aws)
        assert done.returncode == 0, done.stderr
    deployed = full.mlship("local", "deploy", *REHEARSAL, "--json", cwd=project, timeout=600, **aws)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert json.loads(deployed.stdout)["stacks"] == {"Mlship-dev-Registry": "CREATE_COMPLETE",
                                                     "Mlship-dev-Serving": "CREATE_COMPLETE"}
    lambdas = boto3.client("lambda", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name=aws["AWS_REGION"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    function = load_config("dev", {}).names.function_name
    variables = lambdas.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert variables["MODEL_URI"].endswith("/models/churn/1/bundle.tar.gz")  # the pinned, registered bundle
    assert variables["MLSHIP_MODEL_VERSION"] == "1"
