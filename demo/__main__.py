"""`make demo`: the whole flow of a model through mlship, against a local AWS (moto server).

Steps run in order; each path's step lives in ``demo/<area>.py`` with ``run(ctx)``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
from pathlib import Path

STEPS = ("foundation", "realtime", "registry", "release", "experiments", "batch", "edge", "monitoring", "retrain")


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer
    from rich.console import Console

    from demo.context import DemoContext
    from mlship.aws import clients as aws
    from mlship.local.environment import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server access log
    console = Console()
    workdir = Path(os.environ.get("MLSHIP_DEMO_DIR", ".demo")).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    port = free_port()
    server = ThreadedMotoServer(ip_address="localhost", port=port, verbose=False)
    server.start()
    endpoint = f"http://localhost:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                       "AWS_DEFAULT_REGION": "us-east-1", "MLSHIP_CACHE_DIR": str(workdir / "cache"),
                       "MLSHIP_STATE_DIR": str(workdir / "state")})
    aws.clear_cache()
    bucket = "mlship-demo"
    aws.client("s3").create_bucket(Bucket=bucket)
    ctx = DemoContext(workdir=workdir, endpoint_url=endpoint, bucket=bucket, console=console)
    console.print(f"[bold]mlship demo[/bold]: local AWS (moto) at {endpoint}, work directory {workdir}")
    failed = []
    try:
        for name in STEPS:
            try:
                module = importlib.import_module(f"demo.{name}")
            except ModuleNotFoundError as exc:
                if exc.name == f"demo.{name}":
                    console.print(f"[yellow]step {name}: not available in this build, skipped")
                    continue
                raise
            started = time.perf_counter()
            try:
                module.run(ctx)
            except Exception as exc:  # report and keep going: later steps may not depend on it
                console.print_exception(max_frames=5)
                console.print(f"[bold red]step {name} failed: {exc}")
                failed.append(name)
                continue
            console.print(f"[green]step {name} done in {time.perf_counter() - started:.1f}s")
    finally:
        server.stop()
    if failed:
        console.print(f"[bold red]demo finished with failed steps: {', '.join(failed)}")
        return 1
    console.print("[bold green]demo finished: every step passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
