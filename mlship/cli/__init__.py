"""The ``mlship`` command line: parse arguments, call the library, print results.

Errors from mlship (bad input, failed verification, AWS failures) become one clear line
on stderr and exit code 1 (2 for usage errors); never a traceback. A command whose optional
extra is not installed says which one (``mlship.extras``), with exit code 2.

The app is built on first use (:mod:`mlship.cli.root`), not when this package is imported: a
plugin's command module imports ``mlship.cli.common``, and building the app then would load that
plugin again while it is half-initialised.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # PEP 562: ``from mlship.cli import app`` builds it lazily
    if name == "app":
        from mlship.cli.root import app

        return app
    raise AttributeError(f"module 'mlship.cli' has no attribute {name!r}")


def main() -> None:
    """Console entry point (``mlship``)."""
    from mlship.cli.root import main as run

    run()
