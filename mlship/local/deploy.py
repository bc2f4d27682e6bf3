"""Deploy rehearsal: a project's CDK app deployed by the real CDK CLI to the local AWS (moto).

The CLI bootstraps the local account and runs ``cdk deploy --all --method=direct`` in the project
(moto's change sets register no exports, so direct deployments are the ones it can complete).
Only the moto server is targeted, not the control plane: CloudFormation creates the resources in
moto, and moto skips the resource types it lacks (docs/infra.md lists them). Before deploying,
the two deployed-model parameters the serving constructs read must exist, as in a real account
(``mlship rollout pin``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError
from mlship.local.environment import LOCAL_CREDENTIALS, aws_client, local_account

CDK_CLI_ENV = "MLSHIP_CDK_CLI"  # e.g. "npx --yes aws-cdk@2" or a path to node_modules/.bin/cdk
QUIET_CLI = {"CDK_DISABLE_VERSION_CHECK": "1", "CDK_DISABLE_CLI_TELEMETRY": "true", "CI": "true",
             "FORCE_COLOR": "0", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1"}


class RehearsalError(MlshipError):
    """The rehearsal cannot start (no CDK CLI, no cdk.json, no deployed model) or a CDK step failed."""


@dataclass(frozen=True)
class Target:
    """What is deployed: the environment, its model, and the deployed-model parameters its
    stacks read (empty when the configuration pins the model)."""

    env: str
    model: str
    model_parameters: tuple[str, ...]


@dataclass(frozen=True)
class Rehearsal:
    """What the deploy left in the local CloudFormation: status and outputs per stack."""

    statuses: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.statuses) and all(s == "CREATE_COMPLETE" or s == "UPDATE_COMPLETE"
                                           for s in self.statuses.values())


def cdk_cli() -> list[str]:
    """The CDK CLI command: ``$MLSHIP_CDK_CLI``, else ``cdk`` on the PATH."""
    configured = os.environ.get(CDK_CLI_ENV)
    if configured:
        return shlex.split(configured)
    found = shutil.which("cdk")
    if found is None:
        raise RehearsalError("the CDK CLI is not installed: npm install -g aws-cdk@2, or set "
                             f"{CDK_CLI_ENV}=\"npx --yes aws-cdk@2\"")
    return [found]


def cli_environment(moto_url: str, region: str) -> dict[str, str]:
    """This process's environment pointed at moto alone (no AWS_*/CDK_* of the caller's shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(QUIET_CLI)
    env.update({"AWS_ENDPOINT_URL": moto_url, **LOCAL_CREDENTIALS, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def missing_model_parameters(target: Target, ssm: Any) -> list[str]:
    """The deployed-model parameters the stacks read and the local SSM lacks."""
    if not target.model_parameters:
        return []
    found = ssm.get_parameters(Names=list(target.model_parameters))["Parameters"]
    return sorted(set(target.model_parameters) - {p["Name"] for p in found})


def run_cli(args: Sequence[str], *, cwd: Path, env: dict[str, str], echo: Callable[[str], None]) -> None:
    """Run the CDK CLI with ``args``, echoing its output line by line; raise when it fails."""
    command = [*cdk_cli(), *args, "--no-notices"]
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise RehearsalError(f"cannot run the CDK CLI {command[0]!r}: {exc}") from None
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        echo(line.rstrip("\n"))
        tail = [*tail[-40:], line.rstrip("\n")]
    if proc.wait() != 0:
        raise RehearsalError(f"`cdk {' '.join(args[:1])}` exited {proc.returncode}: "
                             + next((t for t in reversed(tail) if t.strip()), "no output"))


def rehearse(project: Path, target: Target, moto_url: str, region: str, context: Sequence[str],
             echo: Callable[[str], None], stacks: Sequence[str] = (), account: str | None = None) -> Rehearsal:
    """Bootstrap the local account and deploy ``stacks`` (default: every stack) of the app in
    ``project`` with the ``-c`` ``context`` pairs (``account``: the local AWS's, else asked of its STS).

    A deploy of every stack first checks the deployed-model parameters; naming stacks skips that
    check, for the first deploy's order (the stack that owns the data bucket, then a registered
    and pinned model, then the rest).
    """
    try:
        missing = [] if stacks else missing_model_parameters(target, aws_client("ssm", moto_url, region))
        account = account or local_account(moto_url, region)
    except Exception as exc:  # botocore: the local AWS stopped answering (stale state)
        raise RehearsalError(f"the local AWS at {moto_url} does not answer ({exc}): run `mlship local up`") from None
    if missing:
        raise RehearsalError(f"no deployed model for environment {target.env!r} ({', '.join(missing)} missing): "
                             f"register a bundle, then `mlship rollout pin --model {target.model}/VERSION "
                             f"--env {target.env}` (what a first deploy to an account needs too)")
    env = cli_environment(moto_url, region)
    with tempfile.TemporaryDirectory(prefix="mlship-bootstrap-") as elsewhere:  # no cdk.json: no synthesis
        run_cli(["bootstrap", f"aws://{account}/{region}"], cwd=Path(elsewhere), env=env, echo=echo)
    options = [arg for pair in context for arg in ("-c", pair)]
    with tempfile.TemporaryDirectory(prefix="assembly-", dir=project) as assembly:
        run_cli(["deploy", *(stacks or ["--all"]), "--require-approval", "never", "--method=direct", "--progress",
                 "events", "--output", assembly, "-c", f"env={target.env}", *options], cwd=project, env=env, echo=echo)
        synthesized = assembly_stacks(Path(assembly))
    # CDK takes patterns and construct paths: report the synthesized stacks they select
    deployed = [name for name in synthesized
                if not stacks or any(fnmatch.fnmatchcase(name, p) or p.endswith(f"/{name}") for p in stacks)]
    try:
        return _described(aws_client("cloudformation", moto_url, region), deployed or list(stacks))
    except RehearsalError:
        raise
    except Exception as exc:  # botocore connection errors
        raise RehearsalError(f"cannot read the stacks back from {moto_url}: {exc}") from None


def assembly_stacks(assembly: Path) -> list[str]:
    """The CloudFormation stack names of a synthesized cloud assembly (its ``manifest.json``)."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    return sorted(artifact.get("properties", {}).get("stackName", name)
                  for name, artifact in manifest.get("artifacts", {}).items()
                  if artifact.get("type") == "aws:cloudformation:stack")


def _described(cloudformation: Any, stacks: list[str]) -> Rehearsal:
    statuses, outputs = {}, {}
    for name in stacks:
        try:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except cloudformation.exceptions.ClientError:
            statuses[name] = "MISSING"
            continue
        statuses[name] = stack["StackStatus"]
        outputs[name] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Rehearsal(statuses, outputs)
