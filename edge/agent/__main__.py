"""``python -m mlship.edge.agent``: the device agent's command line.

    python -m mlship.edge.agent --device DIR init --key mlship.pub [--health-window 60] [--canary canary.json]
                                           [--max-error-rate 0.2] [--min-requests 20] [--max-latency-ms 50]
    python -m mlship.edge.agent --device DIR install PACKAGE.edge.tar.gz | URL | DIR [--sha256 HEX] [--allow-downgrade]
    python -m mlship.edge.agent --device DIR run [--watch DIR] [--thing NAME] [--port 8080] [--poll 30] [--once]
    python -m mlship.edge.agent --device DIR status | rollback | predict '{"feature": 1, ...}'

Every command first recovers from an interrupted update. Exit codes: 0 ok, 1 update refused or
rolled back / error (one line on stderr, e.g. an invalid environment variable), 2 usage.
Options left out come from the environment (``mlship.edge.agent.settings.DeviceSettings``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from mlship.edge.agent.device import Device, InstallResult
from mlship.edge.agent.settings import DeviceSettings

from mlship.errors import MlshipError
from mlship.runtime.hashing import sha256_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlship.edge.agent", description="mlship device agent")
    p.add_argument("--device", type=Path, help="device directory (default: $MLSHIP_DEVICE_DIR)")
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create a device directory")
    init.add_argument("--key", action="append", required=True, type=Path, help="trusted public key (repeatable)")
    init.add_argument("--device-id")
    init.add_argument("--health-window", type=float, default=0.0, help="probation seconds after a switch")
    init.add_argument("--max-error-rate", type=float, default=0.2)
    init.add_argument("--min-requests", type=int, default=20)
    init.add_argument("--max-latency-ms", type=float, help="in probation, a model run slower than this is a failure")
    init.add_argument("--canary", help="JSON file (in the device dir) of inputs every new model must score")
    inst = sub.add_parser("install", help="install a package from a file, directory or http(s) URL")
    inst.add_argument("source")
    inst.add_argument("--sha256")
    inst.add_argument("--allow-downgrade", action="store_true", default=None)
    run = sub.add_parser("run", help="serve and apply updates from a directory and/or AWS IoT Jobs")
    run.add_argument("--watch", type=Path, help="directory of packages (offline updates)")
    run.add_argument("--thing", help="AWS IoT thing name (needs boto3/botocore)")
    run.add_argument("--port", type=int, help="serve /predict on 127.0.0.1:PORT (default: $MLSHIP_AGENT_PORT)")
    run.add_argument("--host", help="default: $MLSHIP_AGENT_HOST or 127.0.0.1")
    run.add_argument("--poll", type=float, help="seconds between polls (default: $MLSHIP_AGENT_POLL_SECONDS or 30)")
    run.add_argument("--once", action="store_true", help="one polling round, then exit")
    sub.add_parser("status", help="print the status file")
    sub.add_parser("rollback", help="switch back to the previous model")
    pred = sub.add_parser("predict", help="predict JSON (a record, a list or {\"instances\": [...]}) or CSV text "
                          "(argument or '-' for stdin)")
    pred.add_argument("data")
    return p


def watch_once(device: Device, directory: Path) -> list[InstallResult]:
    """Offer every package in ``directory`` not yet installed or refused (oldest name first)."""
    results = []
    current = device.current_dir()
    for pkg in sorted(directory.glob("*.tar.gz")):
        try:
            digest = sha256_file(pkg)
        except OSError:  # removed or unreadable while scanning (a USB stick pulled): next round
            continue
        seen = device.was_rejected(digest) or device.was_skipped(digest)
        if seen or (current is not None and current.name.endswith(digest[:8])):
            continue
        results.append(device.install(pkg, sha256=digest))
        current = device.current_dir()
    return results


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _apply_settings(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: DeviceSettings) -> None:
    """Options left out take the environment's values (``DeviceSettings``)."""
    args.device = args.device or settings.device_dir
    if args.device is None:
        parser.error("--device is required (or set MLSHIP_DEVICE_DIR)")
    if args.command == "run":
        args.host = args.host or settings.host
        args.port = args.port if args.port is not None else settings.port
        args.poll = args.poll if args.poll is not None else settings.poll_seconds


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = DeviceSettings.from_env()
        _apply_settings(parser, args, settings)
        if args.command == "init":
            device = Device.init(
                args.device,
                args.key,
                device_id=args.device_id,
                health_window_s=args.health_window,
                max_error_rate=args.max_error_rate,
                min_requests=args.min_requests,
                max_latency_ms=args.max_latency_ms,
                canary=args.canary,
            )
            _print(device.status())
            return 0
        device = Device(args.device, extract_limits=settings.extract_limits())
        if args.command == "status":
            _print(device.status())
            return 0
        for note in device.recover():
            print(f"recovered: {note}", file=sys.stderr)
        if args.command == "install":
            result = device.install(args.source, sha256=args.sha256, allow_downgrade=args.allow_downgrade)
            _print(result.to_dict())
            if not result.ok:
                print(f"error: update {result.outcome}: {result.reason}", file=sys.stderr)
            return 0 if result.ok else 1
        if args.command == "rollback":
            result = device.rollback()
            _print(result.to_dict())
            return 0
        if args.command == "predict":
            from mlship.runtime import protocol

            text = sys.stdin.read() if args.data == "-" else args.data
            _print(device.predict(protocol.decode(text.encode("utf-8"), None)).to_dict())  # JSON or CSV
            return 0
        return run(device, args)
    except MlshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def run(device: Device, args: argparse.Namespace) -> int:
    """The agent loop: serve, poll the update sources, manage the health window."""
    jobs = None
    if args.thing:
        from mlship.edge.agent.iot import IotJobs

        jobs = IotJobs(args.thing)
        device.reporter = jobs.reporter(device)
    server = None
    if args.port:
        from mlship.edge.agent.server import start_server

        server = start_server(device, args.host, args.port)
        print(f"serving on http://{args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            device.check_probation()
            if args.watch:
                for result in watch_once(device, args.watch):
                    print(f"update {result.outcome}: {result.version} {result.reason or ''}", file=sys.stderr)
            if jobs is not None:
                from mlship.edge.agent.iot import apply_job

                try:
                    job = jobs.next_job()
                except Exception as exc:  # offline or throttled: the device keeps serving
                    print(f"iot jobs unavailable: {exc}", file=sys.stderr)
                    job = None
                if job is not None:
                    result = apply_job(device, job)
                    print(f"job {job['job_id']}: {result.outcome} {result.reason or ''}", file=sys.stderr)
            if args.once:
                break
            deadline = time.monotonic() + args.poll
            while not stop["now"] and time.monotonic() < deadline:
                time.sleep(min(0.5, args.poll))
                device.check_probation()
    finally:
        if server is not None:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
