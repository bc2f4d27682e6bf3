"""The extras map (mlship/extras.py) agrees with pyproject.toml and the CLI, and its messages."""

from __future__ import annotations

import functools
import tomllib
from importlib.metadata import packages_distributions, requires

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fresh_install.fresh import REPO
from mlship.extras import (
    COMMAND_EXTRAS,
    EXTRA_MODULES,
    PREFLIGHT,
    command_extra,
    missing_extra,
    missing_extra_message,
)

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
TOOLING = {"dev", "bench", "all"}  # not a job of the CLI: no command hints them


@functools.cache
def _providers() -> dict[str, set[str]]:
    """Top-level import name -> the canonical names of the installed distributions providing it."""
    return {module: {canonicalize_name(d) for d in dists} for module, dists in packages_distributions().items()}


@functools.cache
def _imports_of(distribution: str) -> frozenset[str]:
    """Top-level import names a distribution installed in this venv provides (a meta-package such as
    sagemaker 3: those of the distributions it requires)."""
    name = canonicalize_name(distribution)
    found = {module for module, dists in _providers().items() if name in dists and not module.startswith("_")}
    if found:
        return frozenset(found)
    required = [Requirement(line) for line in requires(distribution) or []]
    return frozenset().union(*(_imports_of(req.name) for req in required if req.marker is None))


def _extra(name: str) -> list[Requirement]:
    return [Requirement(line) for line in PROJECT["optional-dependencies"][name]]


def test_every_job_extra_is_mapped_and_all_installs_every_one():
    jobs = set(PROJECT["optional-dependencies"]) - TOOLING
    assert set(EXTRA_MODULES) == jobs
    (everything,) = _extra("all")
    assert canonicalize_name(everything.name) == "mlship" and everything.extras == jobs


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_an_extras_modules_are_what_its_distributions_install(extra: str):
    provided = set().union(*(_imports_of(req.name) for req in _extra(extra)))
    mapped = set(EXTRA_MODULES[extra])
    assert mapped <= provided  # every mapped import comes from this extra's distributions
    for req in _extra(extra):  # and every distribution of the extra is recognised by one import
        assert _imports_of(req.name) & mapped, req.name


def test_the_core_dependencies_never_produce_a_hint():
    core = set().union(*(_imports_of(Requirement(line).name) for line in PROJECT["dependencies"]))
    assert core and not core & set().union(*EXTRA_MODULES.values())
    assert missing_extra("numpy.linalg", ["export"]) is None


def test_every_mapped_command_exists_and_names_an_extra():
    import typer.main

    from mlship.cli import app

    root = typer.main.get_command(app)
    for words in [*COMMAND_EXTRAS, *PREFLIGHT]:
        command = root
        for word in words:
            command = command.commands[word]
    assert set(COMMAND_EXTRAS.values()) <= set(EXTRA_MODULES)


def test_the_commands_extra_is_preferred_when_it_provides_the_module():
    assert missing_extra("pandas", ["drift"]) == "monitor"
    assert missing_extra("pandas.io", ["export"]) == "export"
    assert missing_extra("pandas", ["batch", "run"]) == "spark"
    assert missing_extra("boto3", ["promote"]) == "aws"  # promote's job is export, the registry needs aws
    assert missing_extra_message("sklearn", ["export"]) == (
        "mlship export needs the 'export' extra: pip install 'mlship[export]'")


@given(st.sampled_from(sorted(set().union(*EXTRA_MODULES.values()))),
       st.lists(st.text(alphabet=st.characters(categories=["L", "N"]), max_size=8), max_size=3))
def test_any_known_module_under_any_command_gives_one_line(module: str, words: list[str]):
    message = missing_extra_message(module, words)
    assert message is not None and "\n" not in message
    extra = missing_extra(module, words)
    assert module in EXTRA_MODULES[extra]
    assert message.endswith(f"pip install 'mlship[{extra}]'")


def test_a_job_that_needs_two_extras_names_both_in_one_line():
    from mlship.extras import COMMAND_EXTRA_SETS

    expected = "mlship shadow report needs the 'monitor' and 'aws' extras: pip install 'mlship[monitor,aws]'"
    assert missing_extra_message("boto3", ["shadow", "report"]) == expected  # boto3 first, in a core install
    assert missing_extra_message("jinja2", ["shadow", "report"]) == expected
    assert missing_extra_message("sklearn", ["promote"]) == (
        "mlship promote needs the 'export' and 'aws' extras: pip install 'mlship[export,aws]'")
    assert missing_extra_message("pandas", ["drift"]) == (
        "mlship drift needs the 'monitor' extra: pip install 'mlship[monitor]'")
    for words, extras in COMMAND_EXTRA_SETS.items():
        assert command_extra(words) in extras and set(extras) <= set(EXTRA_MODULES)
