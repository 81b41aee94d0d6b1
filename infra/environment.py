"""Where the CDK context comes from: an environment file, ``-c key=value`` on the command line, or
``build_app(context)`` in tests; and the account and region to deploy to.

``-c env=myportal`` reads ``infra/env/myportal.json``, made from one of ``infra/env/examples/``, whose
placeholder ids are refused. A key given both in the environment file and on the command line must agree: the
file is what the next deploy reads, so a command-line value that differs would be lost then (and is refused
now). What the keys mean, their defaults and their checks are ``infra/config.py``'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import ContextError, StackConfig

ENV_DIR = Path(__file__).resolve().parent / "env"
#: The example environment files, to copy into ENV_DIR and edit: their ids are placeholders, refused at synth.
EXAMPLES_DIR = ENV_DIR / "examples"
#: Context keys whose example values are placeholders (ids, ARNs, addresses of no real deployment).
PLACEHOLDER_KEYS = (
    "account",
    "db_secret",
    "events_db_secret",
    "vpc_id",
    "subnet_ids",
    "route_table_ids",
    "security_group_id",
    "db_security_group_id",
    "kms_key_arns",
    "inventory_manifest",
    "alarm_email",
)
#: Context keys that are not StackConfig fields.
APP_KEYS = ("env", "account", "region", "stack_name")
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def placeholders() -> dict[str, dict[str, str]]:
    """Each placeholder value of the example files, by key: {key: {value: the example file's name}}."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        values = json.loads(path.read_text())
        for key in PLACEHOLDER_KEYS:
            value = values.get(key)
            for item in value if isinstance(value, list) else [value] if value is not None else []:
                if key.endswith("db_secret") and not str(item).startswith("arn:"):
                    continue  # a secret's name (the runbook's own) is no placeholder; its example ARN is
                found.setdefault(key, {})[str(item)] = f"infra/env/examples/{path.name}"
    return found


def refuse_placeholders(app: cdk.App) -> None:
    """Refuse a context that still holds an example file's placeholder id, naming each key."""
    known = placeholders()
    problems = []
    for key in PLACEHOLDER_KEYS:
        value = app.node.try_get_context(key)
        items = value if isinstance(value, list) else str(value).split(",") if value is not None else []
        for item in items:
            source = known.get(key, {}).get(str(item).strip())
            if source:
                problems.append(f"{key} holds {str(item).strip()!r}, the placeholder of {source}: give your own")
    if problems:
        raise ContextError("invalid CDK context: " + "; ".join(problems) + " (README, Deploy, step 1)")


def known_keys() -> set[str]:
    return {f.name for f in fields(StackConfig) if f.name != "extra"} | set(APP_KEYS)


def _normalized(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def environment_file(name: str) -> Path:
    if not _ENV_NAME.match(name):
        raise ContextError(f"env={name!r} is not an environment name (letters, digits, - and _)")
    path = ENV_DIR / f"{name}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in ENV_DIR.glob("*.json"))) or "none"
        raise ContextError(
            f"env={name!r}: there is no {path.relative_to(ENV_DIR.parent.parent)} (available: {available})"
        )
    return path


def apply_environment(app: cdk.App) -> str | None:
    """Load ``infra/env/{env}.json`` into the app's context (before any stack is created).

    Returns the environment's name, or None when no ``env`` is given.
    """
    name = app.node.try_get_context("env")
    if name is None or str(name).strip() == "":
        return None
    path = environment_file(str(name))
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContextError(f"{path.name} is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ContextError(f"{path.name} must hold one JSON object of context keys")
    values = {k: v for k, v in values.items() if not k.startswith("//")}  # "//..." keys are comments
    problems = [f"{path.name} sets {k!r}, which is no context key" for k in sorted(set(values) - known_keys())]
    for key, value in values.items():
        given = app.node.try_get_context(key)
        if given is not None and _normalized(given) != _normalized(value):
            problems.append(
                f"{key} is {_normalized(value)!r} in {path.name} but {_normalized(given)!r} on the command line: "
                f"change it in {path.name} (the next deploy reads the file) and drop the -c"
            )
    if problems:
        raise ContextError("invalid CDK context: " + "; ".join(problems))
    for key, value in values.items():
        app.node.set_context(key, value)
    return str(name)


def deployment_target(app: cdk.App, default_account: str | None, default_region: str | None) -> cdk.Environment:
    """The account and region: from the context (environment files name them), else the CLI's defaults."""
    account = app.node.try_get_context("account") or default_account
    region = app.node.try_get_context("region") or default_region
    problems = []
    if account is not None and not _ACCOUNT.match(str(account)):
        problems.append(f"account={account!r} is not a 12-digit AWS account id")
    if region is not None and not _REGION.match(str(region)):
        problems.append(f"region={region!r} is not an AWS region such as us-west-2")
    if problems:
        raise ContextError("invalid CDK context: " + "; ".join(problems))
    return cdk.Environment(
        account=str(account) if account is not None else None, region=str(region) if region is not None else None
    )
