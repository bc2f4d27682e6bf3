"""Where the constructs' code and images come from: Lambda assets, the serving image, batch files.

Switch Lambda packaging in one place (:func:`lambda_code`): ``build`` uses
``mlship.deploy.lambda_asset.build_lambda_asset`` (dependencies + mlship core, built without Docker);
``source`` ships ``functions/<name>/`` alone (fast; for tests and when packaging is unavailable).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from mlship.deploy.serving_image import serving_image_context
from mlship.resources import MissingResource, data_path, output_root


@dataclass(frozen=True)
class LambdaAsset:
    code: lambda_.Code
    handler: str
    source: str  # "build" or "source"


def lambda_code(name: str, mode: str = "build") -> LambdaAsset:
    """The code of Lambda ``name`` (``functions/<name>``) and its handler path."""
    if mode == "build":
        try:
            from mlship.deploy.lambda_asset import HANDLER, build_lambda_asset
        except ImportError:
            print(f"mlship.deploy.lambda_asset is not available: shipping functions/{name} without dependencies",
                  file=sys.stderr)
        else:
            path = Path(build_lambda_asset(name))
            return LambdaAsset(lambda_.Code.from_asset(str(path)), HANDLER, "build")
    src = data_path("functions") / name
    if not (src / "handler.py").is_file():
        raise FileNotFoundError(f"{src}/handler.py does not exist")
    return LambdaAsset(lambda_.Code.from_asset(str(src), exclude=["__pycache__", "*.pyc"]),
                       "handler.handler", "source")


def serving_image(scope: Construct, image_uri: str | None) -> tuple[str, ecr_assets.DockerImageAsset | None]:
    """The ``mlship serve`` image URI: ``image_uri`` when given, else the serving Dockerfile as an asset.

    The Dockerfile and its context come from :func:`mlship.deploy.serving_image.serving_image_context`
    (the checkout, or the installed package staged under ``build/serving-image``). The asset needs
    Docker only at ``cdk deploy`` (publishing); ``cdk synth`` just stages the context. Set
    ``endpoint.image_uri`` to deploy without Docker.
    """
    if image_uri:
        return image_uri, None
    try:
        context = serving_image_context()
    except MissingResource as exc:
        raise FileNotFoundError(f"{exc}: build the serving image or set endpoint.image_uri "
                                "(-c mlship:endpoint.image_uri=ACCOUNT.dkr.ecr...)") from None
    asset = ecr_assets.DockerImageAsset(scope, "ServingImage", directory=str(context.directory), file=context.file,
                                        exclude=list(context.exclude), platform=ecr_assets.Platform.LINUX_AMD64)
    return asset.image_uri, asset


def batch_script() -> Path:
    """The Spark job's entry point (``batch/score.py``, installed as ``mlship/batch/score.py``)."""
    from mlship.batch.emr import BATCH_DIR, ENTRY_POINT

    return BATCH_DIR / ENTRY_POINT


def batch_code(out_dir: Path) -> Path:
    """The zip of the mlship + batch sources the Spark job imports (``--py-files``)."""
    from mlship.batch.emr import build_code_zip

    return build_code_zip(out_dir)


def batch_dependencies(setting: str | None, build: bool, out_dir: Path) -> str | Path | None:
    """The worker dependencies archive: an s3:// URI, a local file, a fresh build, or None."""
    if setting and setting.startswith("s3://"):
        return setting
    if setting:
        path = Path(setting) if Path(setting).is_absolute() else output_root() / setting
        if not path.is_file():
            raise FileNotFoundError(f"batch.dependencies_archive {setting} does not exist")
        return path
    if build:
        from mlship.batch.emr import build_deps_archive

        return build_deps_archive(out_dir)
    return None
