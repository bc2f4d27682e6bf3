"""The retraining image: ``Dockerfile.retrain`` on AWS's prebuilt SageMaker scikit-learn image.

The base image is resolved with the SageMaker Python SDK (``sagemaker.core.image_uris``, offline;
imported here only, so only a synthesis with the Retrain stack pays its ~3.5 s import) and passed
as the ``BASE_IMAGE`` build argument. The build context is staged at synthesis under
``build/retrain-image/``: the ``mlship`` package, ``constraints.txt``, the Dockerfile and a
``project/`` directory laid out like the repository, holding a ``cdk.json`` with the exact
configuration this stack was synthesized from (``-c`` overrides included), ``retrain.code_dir``
and the ``retrain.thresholds`` file. Synthesis only stages; Docker is needed at ``cdk deploy``
(the asset is built and pushed then), as for the serving image.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from mlship.config import CDK_JSON_ENV, ConfigError, MlshipConfig, load_config
from mlship.resources import DATA_DIR, data_path, output_root, package_root

DOCKERFILE = "Dockerfile.retrain"
PROJECT_DIR = "/opt/mlship/project"  # the image's copy of the project (the steps' working directory)
CDK_JSON_PATH = f"{PROJECT_DIR}/cdk.json"
CDK_JSON_VARIABLE = CDK_JSON_ENV  # the variable the steps' load_project_config reads
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", DATA_DIR)


@dataclass(frozen=True)
class RetrainImage:
    """The image the steps run in, and what it was built from."""

    image_uri: str
    asset: ecr_assets.DockerImageAsset
    base_image: str
    context: Path


def base_image(cfg: MlshipConfig, region: str) -> str:
    """The prebuilt SageMaker scikit-learn image of ``retrain.framework_version`` in ``region``."""
    from sagemaker.core import image_uris  # heavy (~3.5 s): only when the Retrain stack is built

    try:
        return str(image_uris.retrieve("sklearn", region=region, version=cfg.retrain.framework_version,
                                       instance_type=cfg.retrain.training_instance_type, image_scope="training"))
    except ValueError as exc:
        raise ConfigError(cfg.env, [f"retrain.framework_version: {exc}"]) from None


def effective_cdk_json(cfg: MlshipConfig) -> dict[str, object]:
    """A ``cdk.json`` whose ``env`` section is ``cfg`` itself (checked to load back equal)."""
    settings = cfg.model_dump(mode="json", exclude={"env"})
    doc: dict[str, object] = {"context": {"env": cfg.env, "mlship": {"environments": {cfg.env: settings}}}}
    if load_config(cfg.env, doc["context"]) != cfg:  # type: ignore[arg-type]
        raise ConfigError(cfg.env, ["retrain: the configuration does not survive a round trip through cdk.json"])
    return doc


def _project_path(cfg: MlshipConfig, key: str, value: str, base: Path) -> Path:
    """``value`` (relative to the project) resolved, refused when it leaves the project or is missing."""
    path = (base / value).resolve()
    if Path(value).is_absolute() or not path.is_relative_to(base.resolve()):
        raise ConfigError(cfg.env, [f"retrain.{key}: {value!r} must be a path inside the project "
                                    "(it is copied into the retraining image at the same place)"])
    if not path.exists():
        raise ConfigError(cfg.env, [f"retrain.{key}: {path} does not exist"])
    return path


def stage_context(cfg: MlshipConfig, base: Path | None = None, out: Path | None = None) -> Path:
    """Write the build context of ``cfg``'s retraining image; return its directory.

    ``base`` is the project (default: the checkout, else the current directory): ``retrain.code_dir``
    and ``retrain.thresholds`` are read from it. The Dockerfile, constraints and the mlship package
    come from this installation (the checkout's files, or the ones the wheel ships).
    """
    base = base or output_root()
    out = out or output_root() / "build" / "retrain-image" / cfg.name
    copies = {key: _project_path(cfg, key, value, base)
              for key in ("code_dir", "thresholds") if (value := getattr(cfg.retrain, key))}
    if out.exists():
        shutil.rmtree(out)
    project = out / "project"
    project.mkdir(parents=True)
    shutil.copy2(data_path(DOCKERFILE), out / DOCKERFILE)
    shutil.copy2(data_path("constraints.txt"), out / "constraints.txt")
    shutil.copytree(package_root() / "mlship", out / "mlship", ignore=_IGNORED)
    (project / "cdk.json").write_text(json.dumps(effective_cdk_json(cfg), indent=1, sort_keys=True) + "\n")
    for source in copies.values():
        target = project / source.relative_to(base.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_IGNORED, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return out


def retrain_image(scope: Construct, cfg: MlshipConfig, region: str) -> RetrainImage:
    """The retraining image as a Docker image asset built on the resolved SageMaker base image."""
    base = base_image(cfg, region)
    context = stage_context(cfg)
    code_dir = (cfg.retrain.code_dir or "").strip("/")
    asset = ecr_assets.DockerImageAsset(
        scope, "RetrainImage", directory=str(context), file=DOCKERFILE, platform=ecr_assets.Platform.LINUX_AMD64,
        build_args={"BASE_IMAGE": base, "CODE_DIR": code_dir})
    return RetrainImage(asset.image_uri, asset, base, context)
