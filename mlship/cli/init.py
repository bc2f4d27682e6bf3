"""``mlship init DIR``: scaffold a model project that uses mlship's CDK constructs from outside this repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from mlship.cli.common import fail

TEMPLATES = {"app.py": "app.py.j2", "train.py": "train.py.j2", "README.md": "README.md.j2",
             ".gitignore": "gitignore.j2"}


LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # written into train.py as a string literal


def project_cdk_json(model: str, prefix: str, owner: str, label: str = "churned") -> dict[str, object]:
    """The project's cdk.json: the app command, the CDK feature flags mlship is tested with, and
    the mlship settings of three environments."""
    from mlship.resources import cdk_feature_flags

    settings = {
        "common": {"prefix": prefix, "model": {"name": model}, "tags": {"owner": owner},
                   "retrain": {"label": label}},
        # staging and prod schedule batch scoring: the workers' wheels are built at synthesis (pip)
        "environments": {"dev": {}, "staging": {"batch": {"build_dependencies": True}},
                         "prod": {"monitoring": {"schedule": "rate(1 hour)"}, "batch": {"build_dependencies": True}}},
    }
    return {"app": "python app.py", "output": "cdk.out",
            "context": {"env": "dev", "mlship": settings, **cdk_feature_flags()}}


def render(name: str, **values: str) -> str:
    """One scaffold template (``mlship/cli/templates/init``) rendered with ``values``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mlship.cli", "templates/init"), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    return env.get_template(name).render(**values)


def _check_names(model: str, prefix: str, label: str, owner: str) -> None:
    """Refuse names the configuration would refuse, with its message (before anything is written)."""
    from mlship.config import ConfigError, build_config

    if not LABEL.match(label):
        fail(f"--label {label!r}: a column name of letters, digits and '_' (not starting with a digit)", code=2)
    try:
        build_config("dev", {"prefix": prefix, "model": {"name": model}, "tags": {"owner": owner},
                             "retrain": {"label": label}})
    except ConfigError as exc:
        fail("; ".join(exc.problems), code=2)


def init(directory: Path = typer.Argument(..., help="The project folder to create (new or empty)."),
         model: str = typer.Option("churn", "--model", help="The model's registry name."),
         prefix: str = typer.Option("mlship", "--prefix", help="Resource-name prefix (stacks <Prefix>-<env>-*)."),
         label: str = typer.Option("churned", "--label", help="The label column of train.py's data."),
         owner: str = typer.Option("ml-platform", "--owner", help="The owner tag on every resource.")) -> None:
    """Scaffold a project: app.py (mlship's CDK constructs), cdk.json (settings per environment),
    train.py (a trainer that exports a signed bundle) and a README."""
    _check_names(model, prefix, label, owner)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        fail(f"{directory} exists and is not an empty folder: choose a new one", code=2)
    values = {"model": model, "label": label, "stack_prefix": prefix.capitalize()}
    files = {target: render(template, **values) for target, template in TEMPLATES.items()}
    files["cdk.json"] = json.dumps(project_cdk_json(model, prefix, owner, label), indent=2) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    for target, text in files.items():
        (directory / target).write_text(text, encoding="utf-8")
    typer.echo(f"created {directory}/: {', '.join(sorted(files))}")
    typer.echo(f"next: cd {directory} && cat README.md")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
