"""The Lambda asset built without Docker: sizes, contents, and the handler importing from it.

The first run downloads wheels from PyPI (~20 s per asset); later runs reuse the cached
asset under build/ (rebuilt only when an input changes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlship.deploy.lambda_asset import (
    LAMBDA_UNZIPPED_LIMIT,
    ROOT,
    asset_info,
    build_lambda_asset,
    mlship_closure,
    runtime_python,
    runtime_stand_in,
)
from realtime.helpers import rest_v1_event

pytestmark = pytest.mark.slow

FORBIDDEN = ("sklearn", "scipy", "pandas", "pyspark", "sagemaker", "aws_cdk", "boto3", "botocore", "skl2onnx")


@pytest.fixture(scope="module")
def asset() -> Path:
    return build_lambda_asset("predict")


def test_asset_fits_lambda_and_has_only_serving_code(asset):
    info = asset_info("predict")
    assert info is not None and info["runtime"] == "python3.12" and info["handler"] == "handler.handler"
    assert info["unzipped_bytes"] < LAMBDA_UNZIPPED_LIMIT
    assert info["zipped_bytes"] < 50 * 1024 * 1024
    assert (asset / "handler.py").is_file()
    for module in ("runtime/predictor.py", "runtime/schema.py", "runtime/bundle.py", "runtime/signing.py",
                   "runtime/records.py", "runtime/protocol.py", "aws/clients.py", "aws/records.py"):
        assert (asset / "mlship" / module).is_file(), module
    for module in ("evaluation", "cli", "local", "serving", "deploy"):
        assert not (asset / "mlship" / module).exists(), module
    top = {p.name for p in asset.iterdir()}
    assert not [name for name in FORBIDDEN if name in top]
    # the onnxruntime extension is the CPython 3.12 manylinux build Lambda needs
    assert list((asset / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so"))
    _check_pyc(asset, info)


def _check_pyc(asset: Path, info: dict) -> None:
    """Shipped .pyc are the runtime's (cpython-312) and unchecked-hash (flags 0b01: a zip's 2-second
    file times cannot make them stale); none of the building interpreter's when it is another version."""
    pyc = list(asset.rglob("*.pyc"))
    assert all(p.name.endswith(".cpython-312.pyc") and p.parent.name == "__pycache__" for p in pyc)
    if not info["pyc_compiled"]:
        assert not pyc and runtime_python("3.12") is None
        return
    sources = [p for p in asset.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(pyc) >= 0.95 * len(sources)  # a few vendored files do not compile for 3.12
    assert (asset / "__pycache__" / "handler.cpython-312.pyc").is_file()
    assert (asset / "mlship" / "runtime" / "__pycache__" / "predictor.cpython-312.pyc").is_file()
    assert {int.from_bytes(p.read_bytes()[4:8], "little") for p in pyc} == {0b01}


def test_rebuild_is_cached(asset):
    before = asset.stat().st_ino, asset_info("predict")["fingerprint"]
    again = build_lambda_asset("predict")
    assert (again.stat().st_ino, asset_info("predict")["fingerprint"]) == before


def test_closure_follows_lazy_imports():
    files = {p.as_posix() for p in mlship_closure([ROOT / "functions" / "predict" / "handler.py"])}
    assert "mlship/runtime/predictor.py" in files  # the handler's lazy import
    assert "mlship/runtime/signing.py" in files  # a lazy import in the predictor
    assert "mlship/evaluation/export.py" not in files


def test_handler_imports_and_predicts_from_the_asset(churn_bundle, holdout_records, signing_keys):
    """Python 3.12 is not installed here, so the same build is made for 3.11 wheels and run with
    the asset first on sys.path (boto3 comes from the runtime, as in Lambda)."""
    asset = build_lambda_asset("predict", Path("build/lambda-py311"), python_version="3.11", measure_zip=False)
    event = rest_v1_event(json.dumps({"instances": holdout_records[:3]}))
    code = f"""
import json, os, sys
sys.path.insert(0, {str(asset)!r})
os.environ.update(MODEL_URI={str(churn_bundle)!r}, POWERTOOLS_TRACE_DISABLED="1", POWERTOOLS_SERVICE_NAME="t",
                  MLSHIP_PUBLIC_KEY={(signing_keys / "mlship.pub").read_text()!r})
import handler
class Ctx:
    aws_request_id = "r1"; function_name = "predict"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:predict"
resp = handler.handler(json.loads({json.dumps(event)!r}), Ctx())
origin = {{m: sys.modules[m].__file__ for m in ("numpy", "onnxruntime", "aws_lambda_powertools", "mlship",
                                                "cryptography", "handler")}}
heavy = [m for m in {list(FORBIDDEN)!r} if m in sys.modules and m not in ("boto3", "botocore")]
print("RESULT" + json.dumps({{"status": resp["statusCode"], "body": json.loads(resp["body"]), "origin": origin,
                              "heavy": heavy}}))
"""
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line.removeprefix("RESULT"))
    assert result["status"] == 200, result["body"]
    assert len(result["body"]["predictions"]) == 3
    assert all(path.startswith(str(asset)) for path in result["origin"].values()), result["origin"]
    assert result["heavy"] == []


@pytest.mark.skipif(runtime_python("3.12") is None, reason="no Python 3.12 interpreter here")
def test_the_built_asset_answers_under_the_runtime_python(asset, churn_bundle, holdout_records, tmp_path):
    """The real python3.12 asset (its cp312 wheels and .pyc) in a fresh isolated interpreter, with
    sys.path as Lambda's: the asset (/var/task), then boto3 and its dependencies (/var/runtime);
    the imported modules come from their shipped .pyc."""
    provided = runtime_stand_in()
    event = rest_v1_event(json.dumps({"instances": holdout_records[:2]}))
    code = f"""
import json, os, sys
sys.path[:0] = [{str(asset)!r}, {str(provided)!r}]
os.environ.update(MODEL_URI={str(churn_bundle)!r}, POWERTOOLS_SERVICE_NAME="t")
import handler
class Ctx:
    aws_request_id = "r1"; function_name = "predict"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:predict"
resp = handler.handler(json.loads({json.dumps(event)!r}), Ctx())
mods = [m for m in ("handler", "numpy", "onnxruntime", "mlship.runtime.predictor") if m in sys.modules]
print("RESULT" + json.dumps({{"status": resp["statusCode"], "body": json.loads(resp["body"]),
                              "cached": {{m: sys.modules[m].__cached__ for m in mods}}}}))
"""
    # PYTHONDONTWRITEBYTECODE: the asset stays as built (Lambda's /var/task is read-only)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}
    done = subprocess.run([runtime_python("3.12"), "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd="/", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT")).removeprefix("RESULT"))
    assert result["status"] == 200, result["body"]
    assert len(result["body"]["predictions"]) == 2
    for module, cached in result["cached"].items():
        assert cached.startswith(str(asset)) and cached.endswith(".cpython-312.pyc") and Path(cached).is_file(), module
