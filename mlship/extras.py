"""Which optional extra of the ``mlship`` distribution provides a missing import.

``pip install mlship`` is the runtime tier plus the CLI; every other job's libraries come with an
extra (``pyproject.toml``, ``[project.optional-dependencies]``). A command that imports a library
of an extra that is not installed fails with ``ModuleNotFoundError``; the CLI turns it into one
line naming the extra (:func:`missing_extra_message`). ``tests/fresh_install`` checks these maps
against ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any


class MissingExtra(ModuleNotFoundError):
    """An API function or module needs a library of an extra that is not installed; the message
    names the extra (``pip install mlship`` is the core only)."""


# extra -> the top-level import names of the distributions it installs (in pyproject's order)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "export": ("sklearn", "skl2onnx", "onnx", "google", "scipy", "pandas", "pyarrow", "joblib", "matplotlib",
               "jinja2", "yaml"),
    "aws": ("boto3", "botocore", "aws_lambda_powertools"),
    "spark": ("pyspark", "pandas", "pyarrow", "scipy"),
    "cdk": ("aws_cdk", "constructs", "cdk_nag", "cfnlint", "sagemaker", "jinja2"),
    "monitor": ("scipy", "statsmodels", "pandas", "pyarrow", "matplotlib", "jinja2"),
    "local": ("moto", "boto3", "botocore", "aws_lambda_powertools", "yaml"),
    "loadtest": ("aiohttp", "matplotlib", "jinja2"),
}

# command (its words after ``mlship``) -> the extra its job needs; the longest match wins
COMMAND_EXTRAS: dict[tuple[str, ...], str] = {
    ("export",): "export", ("evaluate",): "export", ("promote",): "export", ("retrain",): "export",
    ("edge",): "export",
    ("drift",): "monitor", ("monitor",): "monitor", ("shadow",): "monitor", ("abtest",): "monitor",
    ("batch",): "spark",
    ("loadtest",): "loadtest",
    ("local",): "local", ("gateway",): "local",
    ("register",): "aws", ("upload",): "aws", ("models",): "aws", ("alias",): "aws", ("rollout",): "aws",
    ("invoke",): "aws",
    ("init",): "cdk",
}

# Commands whose job needs more than one extra: the hint names all of them, so one install is enough.
COMMAND_EXTRA_SETS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("shadow", "report"): ("monitor", "aws"), ("monitor", "run"): ("monitor", "aws"), ("promote",): ("export", "aws"),
}

# Commands that would not surface a missing import as ModuleNotFoundError (a child process imports
# it, or the command reports every failure as its own error): checked before they run.
PREFLIGHT: dict[tuple[str, ...], tuple[str, ...]] = {
    ("local", "up"): ("moto", "boto3", "yaml"),
    ("upload",): ("boto3",),
}


def extras_providing(module: str) -> list[str]:
    """The extras that install top-level import ``module`` (``sklearn.ensemble`` counts as ``sklearn``)."""
    top = module.split(".", 1)[0]
    return [extra for extra, modules in EXTRA_MODULES.items() if top in modules]


def _longest_match(table: dict[tuple[str, ...], Any], command: Sequence[str]) -> Any:
    """The value of the longest key of ``table`` that ``command`` starts with, or None."""
    for length in range(len(command), 0, -1):
        value = table.get(tuple(command[:length]))
        if value is not None:
            return value
    return None


def command_extra(command: Sequence[str]) -> str | None:
    """The extra the job of ``command`` (e.g. ``("shadow", "report")``) needs, if it has one."""
    return _longest_match(COMMAND_EXTRAS, command)


def missing_extra(module: str, command: Sequence[str] = ()) -> str | None:
    """The extra to install for missing ``module`` under ``command``; None when no extra ships it.

    The command's own extra is preferred when it provides the module (``pandas`` for ``mlship
    drift`` is ``monitor``); otherwise the first extra that does (``boto3`` for ``mlship promote``
    is ``aws``).
    """
    candidates = extras_providing(module)
    if not candidates:
        return None
    preferred = command_extra(command)
    return preferred if preferred in candidates else candidates[0]


def missing_extra_message(module: str, command: Sequence[str] = ()) -> str | None:
    """``mlship CMD needs the 'X' extra: pip install 'mlship[X]'``, or None for an unknown module."""
    extra = missing_extra(module, command)
    if extra is None:
        return None
    what = " ".join(("mlship", *command))
    group = _longest_match(COMMAND_EXTRA_SETS, command)
    extras = group if group is not None and extra in group else (extra,)
    if len(extras) > 1:
        named = " and ".join(f"'{e}'" for e in extras)
        return f"{what} needs the {named} extras: pip install 'mlship[{','.join(extras)}]'"
    return f"{what} needs the '{extra}' extra: pip install 'mlship[{extra}]'"


def preflight_message(words: Sequence[str]) -> str | None:
    """The hint for a :data:`PREFLIGHT` command whose extra is missing (``words``: argv without options)."""
    for command, modules in PREFLIGHT.items():
        if tuple(words[: len(command)]) != command:
            continue
        for module in modules:
            if importlib.util.find_spec(module) is None:
                return missing_extra_message(module, command)
    return None
