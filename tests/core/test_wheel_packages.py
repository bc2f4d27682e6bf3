"""The wheel's package list (pyproject ``[tool.setuptools] packages``) names every package of the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tree_packages() -> set[str]:
    found = set()
    for root, prefix in ((REPO / "mlship", "mlship"), (REPO / "batch", "mlship.batch"), (REPO / "edge", "mlship.edge")):
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *rel)))
    return found


def test_every_package_ships_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _tree_packages()
    assert config["package-dir"] == {"mlship.batch": "batch", "mlship.edge": "edge"}


def test_shipped_files_exist_in_the_checkout_and_resolve_there():
    """setup.py copies mlship.resources.SHIPPED into the wheel; from the checkout they resolve in place."""
    from mlship.resources import SHIPPED, checkout_root, data_path

    assert checkout_root() == REPO
    for rel in SHIPPED:
        assert (REPO / rel).exists(), rel
        assert data_path(rel) == REPO / rel
    assert (data_path("functions") / "predict" / "requirements.txt").is_file()


def test_the_sdist_carries_what_the_wheel_ships():
    """MANIFEST.in includes every shipped path, so a wheel built from the sdist has them too."""
    from mlship.resources import SHIPPED

    manifest = (REPO / "MANIFEST.in").read_text()
    for rel in SHIPPED:
        top = rel.split("/", 1)[0]
        assert top in manifest, rel


def test_every_data_file_of_a_package_is_package_data():
    """Templates and other non-Python files under a package ship only if package-data names them."""
    import fnmatch

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {"mlship": REPO / "mlship", **{pkg: REPO / d for pkg, d in setuptools["package-dir"].items()}}
    missing = []
    for top, root in dirs.items():
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root)
            # the deepest package above the file, and the file's path relative to it
            for depth in range(len(rel.parts) - 1, -1, -1):
                candidate = ".".join((top, *rel.parts[:depth]))
                if candidate in setuptools["packages"]:
                    inner = "/".join(rel.parts[depth:])
                    break
            globs = setuptools.get("package-data", {}).get(candidate, [])
            if not any(fnmatch.fnmatch(inner, g) for g in globs):
                missing.append(str(path.relative_to(REPO)))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
