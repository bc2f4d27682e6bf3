"""Run every benchmark (``make bench``), then refresh the README's benchmark table."""

from __future__ import annotations

import argparse
import importlib
import sys

AREAS = ("predictor", "realtime", "batch", "edge", "registry", "monitoring", "drift_cli", "loadtest", "explain")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions / smaller data")
    parser.add_argument("areas", nargs="*", default=list(AREAS))
    args = parser.parse_args()
    failed = []
    for area in args.areas:
        try:
            module = importlib.import_module(f"bench.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{area}":
                print(f"bench {area}: not available, skipped")
                continue
            raise
        print(f"== bench {area}", flush=True)
        try:
            module.main(quick=args.quick)
        except Exception as exc:  # keep going: one failing bench must not hide the others
            print(f"bench {area} failed: {exc!r}", file=sys.stderr)
            failed.append(area)
    from bench.report import update_readme

    update_readme()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
