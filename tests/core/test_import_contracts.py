"""The import contracts of pyproject.toml (``[tool.importlinter]``) hold, and each catches a violation.

grimp finds a package's modules by walking its folder, and ``batch/`` and ``edge/`` install as
``mlship.batch`` and ``mlship.edge`` from outside ``mlship/`` (``package-dir``). So lint-imports runs
in a view of the installed layout: ``mlship/`` with ``batch/`` and ``edge/`` inside, next to
``functions/`` and ``infra/`` (symlinks to check the repository, copies to inject a violation).

``make test`` runs this file as a script to check the repository: ``python tests/core/test_import_contracts.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
CONFIG = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
CONTRACTS = {contract["id"]: contract for contract in CONFIG["tool"]["importlinter"]["contracts"]}


def _lint_imports_command() -> list[str]:
    script = Path(sys.executable).parent / "lint-imports"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "importlinter.cli"]


def _place(source: Path, target: Path, *, copy: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        target.symlink_to(source, target_is_directory=source.is_dir())
    elif source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(source, target)


def build_view(destination: Path, *, copy: bool) -> Path:
    """Lay the repository's packages out under ``destination`` as they are installed."""
    package_dirs: dict[str, str] = CONFIG["tool"]["setuptools"]["package-dir"]
    for entry in (REPO / "mlship").iterdir():
        if entry.name != "__pycache__":
            _place(entry, destination / "mlship" / entry.name, copy=copy)
    for dotted, folder in package_dirs.items():
        _place(REPO / folder, destination.joinpath(*dotted.split(".")), copy=copy)
    for root in CONFIG["tool"]["importlinter"]["root_packages"]:
        if root != "mlship":
            _place(REPO / root, destination / root, copy=copy)
    return destination


def lint_imports(view: Path, *, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the repository's contracts over ``view``."""
    environment = {**os.environ, "COLUMNS": "250"}  # one line per contract, whatever the terminal
    return subprocess.run([*_lint_imports_command(), "--config", str(PYPROJECT), "--no-cache"], cwd=view,
                          env=environment, capture_output=capture, text=True, timeout=120, check=False)


def broken_contracts(stdout: str) -> dict[str, str]:
    """Contract name -> its part of lint-imports' "Broken contracts" report."""
    report = stdout.partition("\nBroken contracts\n")[2]
    headings = sorted((report.find(f"\n{name}\n-"), name) for name in (c["name"] for c in CONTRACTS.values())
                      if f"\n{name}\n-" in report)
    ends = [start for start, _ in headings[1:]] + [len(report)]
    return {name: report[start:end] for (start, name), end in zip(headings, ends, strict=True)}


def main() -> int:
    """Check the repository (``make test``); the exit status is lint-imports'."""
    with tempfile.TemporaryDirectory(prefix="mlship-contracts-") as tmp:
        return lint_imports(build_view(Path(tmp), copy=False), capture=False).returncode


def test_repository_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(build_view(tmp_path, copy=False))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


GRAPH_PROBE = """
import json, sys
import grimp
sys.path.insert(0, ".")
graph = grimp.build_graph("mlship", cache_dir=None)
print(json.dumps({"modules": sorted(graph.modules),
                  "job_imports_storage": graph.direct_import_exists(importer="mlship.batch.job",
                                                                    imported="mlship.batch.storage")}))
"""


def test_view_sees_the_targets_inside_mlship(tmp_path: Path) -> None:
    # a fresh interpreter: here ``mlship`` is already imported from the repository's mlship/
    probe = subprocess.run([sys.executable, "-c", GRAPH_PROBE], cwd=build_view(tmp_path, copy=False),
                           capture_output=True, text=True, timeout=120, check=True)
    graph = json.loads(probe.stdout)
    assert {"mlship.batch.job", "mlship.edge.agent.device", "mlship.runtime.predictor"} <= set(graph["modules"])
    assert graph["job_imports_storage"]


def test_every_core_package_is_bound_by_the_target_contract() -> None:
    children = {path.stem for path in (REPO / "mlship").glob("*.py") if path.stem != "__init__"}
    children |= {path.parent.name for path in (REPO / "mlship").glob("*/__init__.py")}
    forbidden = set(CONTRACTS["core-without-targets"]["forbidden_modules"])
    targets = set(CONFIG["tool"]["setuptools"]["package-dir"])  # batch and edge, outside mlship/
    assert forbidden >= targets | {"mlship.cdk"}  # the CDK constructs are a target too (the deployment)
    core = {f"mlship.{child}" for child in children} - forbidden
    assert set(CONTRACTS["core-without-targets"]["source_modules"]) == core


def test_lambda_tiers_are_closed_under_the_layers() -> None:
    """A shipped tier may import every tier below it, so those must ship too (or the build fails)."""
    from mlship.deploy.lambda_asset import SHIPPED_TIERS

    layers = [[f"mlship.{name.strip()}" for name in layer.split("|")] for layer in CONTRACTS["tiers"]["layers"]]
    shipped = set(SHIPPED_TIERS) - {"mlship"}
    for position, layer in enumerate(layers):
        below = {package for lower in layers[position + 1:] for package in lower}
        for package in shipped.intersection(layer):
            assert below <= shipped, f"{package} ships but {sorted(below - shipped)} below it do not"


@dataclass(frozen=True)
class Violation:
    contract: str
    case: str
    modules: dict[str, str]  # path in the view -> source

    @property
    def label(self) -> str:
        return f"{self.contract}/{self.case}"


VIOLATIONS = [
    Violation("tiers", "stats-imports-registry", {"mlship/stats/_violation.py": "from mlship.registry import store\n"}),
    Violation("tiers", "evaluation-imports-sibling",
              {"mlship/evaluation/_violation.py": "import mlship.monitoring.run\n"}),
    Violation("deployment-sources", "functions-imports-infra", {"functions/_violation.py": "import infra.app\n"}),
    Violation("core-without-targets", "cli-imports-batch", {"mlship/cli/_violation.py": "import mlship.batch.job\n"}),
    Violation("runtime-dependencies", "runtime-imports-boto3", {"mlship/runtime/_violation.py": "import boto3\n"}),
    Violation("edge-agent", "agent-imports-registry",
              {"mlship/edge/agent/_violation.py": "from mlship.registry import store\n"}),
    Violation("edge-agent", "agent-imports-pandas", {"mlship/edge/agent/_violation.py": "import pandas\n"}),
    Violation("runtime-acyclic", "two-module-cycle",
              {"mlship/runtime/_cycle_a.py": "from mlship.runtime import _cycle_b\n",
               "mlship/runtime/_cycle_b.py": "from mlship.runtime import _cycle_a\n"}),
]


def test_every_contract_has_a_violation_case() -> None:
    assert {violation.contract for violation in VIOLATIONS} == set(CONTRACTS)


@pytest.fixture(scope="module")
def copied_view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_view(tmp_path_factory.mktemp("view"), copy=True)


@pytest.fixture
def injected(copied_view: Path, request: pytest.FixtureRequest) -> Iterator[Violation]:
    violation: Violation = request.param
    paths = [copied_view / relative for relative in violation.modules]
    try:
        for path, source in zip(paths, violation.modules.values(), strict=True):
            path.write_text(source, encoding="utf-8")
        yield violation
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("injected", VIOLATIONS, indirect=True, ids=[v.label for v in VIOLATIONS])
def test_contract_catches_its_violation(copied_view: Path, injected: Violation) -> None:
    result = lint_imports(copied_view)
    name = CONTRACTS[injected.contract]["name"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{name} BROKEN" in result.stdout, result.stdout
    # the contract names the injected module itself (not only a violation already in the tree);
    # acyclic_siblings prints names relative to the package ("._cycle_a"), so match the last part
    report = broken_contracts(result.stdout)[name]
    assert any(Path(path).stem in report for path in injected.modules), report


if __name__ == "__main__":
    sys.exit(main())
