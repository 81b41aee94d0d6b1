"""``annotation-reconciler --via-lambda FUNCTION status|approve|release …``: the operator's commands sent to the
deployed schedule function (``aws lambda invoke`` underneath), for a machine with IAM rights and no route to the
database in its private VPC. CloudTrail records who invoked it; the function records ``--by`` in the ledger."""

from __future__ import annotations

import json
from typing import Any

import click

#: The commands the schedule function answers (its ``action``).
COMMANDS = ("status", "approve", "release")


def _lambda_client() -> Any:
    import boto3

    return boto3.client("lambda")


#: Makes the Lambda client; tests replace it with one whose transport runs the handler in process.
client_factory = _lambda_client


def function_of(ctx: click.Context) -> str | None:
    """The function named by ``--via-lambda`` on the command group, if any."""
    obj = ctx.find_root().obj
    return obj.get("via_lambda") if isinstance(obj, dict) else None


def invoke(function: str, payload: dict[str, Any], *, client: Any = None) -> dict[str, Any]:
    """Invoke the function synchronously with ``payload``; its JSON answer, or a one-line error naming what the
    function said when it failed."""
    client = client or client_factory()
    try:
        response = client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
    except Exception as exc:  # botocore's errors: no such function, no rights, no network
        raise click.ClickException(f"could not invoke {function}: {exc}") from None
    raw = response["Payload"].read()
    try:
        body = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = None
    if response.get("FunctionError"):
        message = body.get("errorMessage") if isinstance(body, dict) else raw[:500].decode(errors="replace")
        raise click.ClickException(f"{function} refused {payload.get('action')!r}: {message}")
    if not isinstance(body, dict):
        raise click.ClickException(f"{function} answered {raw[:200]!r}, not a JSON object")
    return body
