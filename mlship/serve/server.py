"""``mlship serve``: the SageMaker inference container as a plain process (gunicorn, no Docker).

Several worker processes (``gthread`` workers, keep-alive), each loading the bundle itself
after the fork (onnxruntime sessions must not cross a fork). SIGTERM is a graceful stop:
the listening socket closes, in-flight requests finish (up to ``graceful_timeout``), then the
workers exit. SageMaker's environment is honoured: ``SAGEMAKER_BIND_TO_PORT`` (port),
``SAGEMAKER_MODEL_SERVER_WORKERS`` (workers) and ``SAGEMAKER_MODEL_SERVER_TIMEOUT``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from mlship.serve import protocol

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080


@dataclass
class ServeConfig:
    """Settings of one ``mlship serve`` process."""

    model: str = DEFAULT_MODEL_DIR
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    port: int = DEFAULT_PORT
    workers: int = 0  # 0: SAGEMAKER_MODEL_SERVER_WORKERS or the number of CPUs
    threads: int = 2  # request threads per worker
    ort_threads: int = 0  # 0: CPUs / workers
    timeout: int = 60
    graceful_timeout: int = 30
    max_body_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES
    access_log: bool = False

    def resolved(self) -> ServeConfig:
        cpus = os.cpu_count() or 1
        workers = self.workers or int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "0") or 0) or cpus
        port = self.port
        if port == DEFAULT_PORT and os.environ.get("SAGEMAKER_BIND_TO_PORT"):
            port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
        timeout = int(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "0") or 0) or self.timeout
        ort = self.ort_threads or max(1, cpus // workers)
        return ServeConfig(self.model, self.host, port, workers, self.threads, ort, timeout, self.graceful_timeout,
                           self.max_body_bytes, self.access_log)


def _worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn hook signature
    from mlship.serve.app import flush_quietly

    app = getattr(worker, "wsgi", None)
    flush_quietly(getattr(app, "writer", None))


def gunicorn_options(cfg: ServeConfig) -> dict[str, Any]:
    """The gunicorn settings for a resolved config."""
    return {
        "bind": f"{cfg.host}:{cfg.port}",
        "workers": cfg.workers,
        "worker_class": "gthread",
        "threads": cfg.threads,
        "timeout": cfg.timeout,
        "graceful_timeout": cfg.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": "-" if cfg.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "mlship-serve",
        "control_socket_disable": True,  # one per server: parallel servers would share a socket path
        "worker_exit": _worker_exit,
    }


def run(cfg: ServeConfig) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT."""
    from gunicorn.app.base import BaseApplication

    cfg = cfg.resolved()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_options(cfg).items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:  # runs in each worker after the fork
            from mlship.serve.app import create_app

            return create_app(cfg.model, threads=cfg.ort_threads, max_bytes=cfg.max_body_bytes,
                              load_wait=float(cfg.timeout))

    logging.getLogger("mlship.serve").info(
        "serving %s on %s:%d with %d workers x %d threads (onnxruntime threads %d)",
        cfg.model, cfg.host, cfg.port, cfg.workers, cfg.threads, cfg.ort_threads)
    _Application().run()


def main(argv: list[str] | None = None) -> None:
    """``python -m mlship.serve [serve] [--model DIR] [--port N] ...`` (the container entry point)."""
    import argparse

    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "serve":  # SageMaker starts the container with the argument `serve`
        args_in = args_in[1:]
    parser = argparse.ArgumentParser(prog="mlship-serve", description="SageMaker inference server for a bundle")
    parser.add_argument("--model", default=os.environ.get("MODEL_URI", DEFAULT_MODEL_DIR))
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-body-bytes", type=int, default=protocol.DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--access-log", action="store_true")
    ns = parser.parse_args(args_in)
    run(ServeConfig(model=ns.model, host=ns.host, port=ns.port, workers=ns.workers, threads=ns.threads,
                    max_body_bytes=ns.max_body_bytes, access_log=ns.access_log))
