"""Shared fixtures: synthetic data, a trained pipeline, a signed bundle, keys, and local AWS.

Session fixtures are built once per pytest worker. Treat ``churn_bundle`` as read-only:
copy it (``shutil.copytree``) before tampering with it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Isolate caches and state from the user's home, and never reach real AWS from tests.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="mlship-tests-"))
os.environ.setdefault("MLSHIP_CACHE_DIR", str(_SESSION_TMP / "cache"))
os.environ["MLSHIP_STATE_DIR"] = str(_SESSION_TMP / "state")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def churn_df() -> Any:
    """6,000 rows of synthetic churn data (deterministic)."""
    from mlship.local.datasets import make_churn

    return make_churn(6000, seed=0)


@pytest.fixture(scope="session")
def churn_split(churn_df: Any) -> tuple[Any, Any]:
    """(train, holdout) split of ``churn_df``."""
    from mlship.local.train import split

    return split(churn_df)


@pytest.fixture(scope="session")
def churn_model(churn_split: tuple[Any, Any]) -> Any:
    """A fitted ColumnTransformer + HistGradientBoosting pipeline whose encoder refuses an unseen category
    (``handle_unknown="error"``: the input-error tests send one; tests/core/test_handle_unknown.py covers
    the modes that score it)."""
    from mlship.local.datasets import CHURN_LABEL
    from mlship.local.train import churn_pipeline

    train = churn_split[0]
    pipe = churn_pipeline("hgb").set_params(pre__cat__handle_unknown="error")
    return pipe.fit(train.drop(columns=[CHURN_LABEL]), train[CHURN_LABEL])


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``mlship.key`` and ``mlship.pub``."""
    from mlship.runtime.signing import generate_keypair

    out = tmp_path_factory.mktemp("keys")
    generate_keypair(out)
    return out


@pytest.fixture(scope="session")
def churn_bundle(tmp_path_factory: pytest.TempPathFactory, churn_split: tuple[Any, Any], churn_model: Any,
                 signing_keys: Path) -> Path:
    """A signed bundle directory (``<dir>.tar.gz`` next to it) of the churn pipeline, version 1."""
    from mlship.evaluation.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "churn-1"
    return export_bundle(churn_model, churn_split[1], "churned", out, name="churn", version="1",
                         sensitive="gender", private_key=signing_keys / "mlship.key",
                         description="test bundle")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on localhost (for subprocesses and the CDK CLI); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    from mlship.local.environment import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="localhost", port=port, verbose=False)
    server.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this process (and subprocesses given ``os.environ``) at the moto server."""
    from mlship.aws import clients as aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    aws.clear_cache()
    yield dict(os.environ)
    aws.clear_cache()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto (``mock_aws``) with no endpoint override."""
    from moto import mock_aws

    from mlship.aws import clients as aws_factory

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws_factory.clear_cache()
    with mock_aws():
        yield
    aws_factory.clear_cache()


@pytest.fixture
def atomic_s3_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's conditional PutObject atomic, and its reads consistent, as they are in S3.

    moto 5.2.5 checks If-Match / If-None-Match and then stores the object in two unlocked steps
    (moto/s3/responses.py ``S3Response.put_object``); real S3 evaluates the condition and the
    write atomically (a concurrent loser gets 412 or 409). moto also closes a replaced object's
    buffer while another thread may still be reading it in ``get_object`` ("I/O operation on
    closed file"); a real S3 GET returns the old or the new object whole. Serialising moto's
    put/get/head handlers gives the race tests S3's semantics; the code under test is unchanged.
    """
    from moto.s3.responses import S3Response

    lock = threading.RLock()
    for handler in ("put_object", "get_object", "head_object"):
        original = getattr(S3Response, handler)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(S3Response, handler, locked)


@pytest.fixture(scope="session")
def nonfinite_bundle(tmp_path_factory: pytest.TempPathFactory, churn_bundle: Path, signing_keys: Path) -> Path:
    """A signed copy of ``churn_bundle`` whose probabilities are NaN when monthly_charges > 1000."""
    from nonfinite import nonfinite_copy

    from mlship.runtime.signing import load_private_key

    out = tmp_path_factory.mktemp("bundles") / "churn-nan"
    return nonfinite_copy(churn_bundle, out, load_private_key(signing_keys / "mlship.key"))
