"""Operators act without a database client (issue 27): the schedule function's ``status``, ``approve`` and
``release`` actions, and ``annotation-reconciler --via-lambda FUNCTION …`` sending them through boto3's Lambda
client. Only the client's HTTP send is replaced, by a hook that runs the real handler in this process on the
request botocore serialized (no AWS); real PostgreSQL, moto S3/SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner

from annotation_reconciler import handlers
from annotation_reconciler.cli import via_lambda
from annotation_reconciler.cli.main import cli
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.plural import count
from support import wired as wired_world
from support.world import World, removed

FUNCTION = "annotation-reconciler-schedule"


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=2, runs_per_dataset=2, annotations_per_voxel_spacing=3)


class _Raw:
    """What botocore reads a response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def lambda_client(calls: list[dict[str, Any]]) -> Any:
    """A boto3 Lambda client whose transport runs the schedule handler on the invoked payload."""
    client = boto3.client("lambda", region_name="us-west-2")

    def send(request: Any, **_: Any) -> AWSResponse:
        assert request.url.endswith(f"/functions/{FUNCTION}/invocations")
        payload = json.loads(request.body)
        calls.append(payload)
        headers = {"Content-Type": "application/json"}
        try:
            body = json.dumps(handlers.handle_schedule(payload, LocalContext()), default=str).encode()
        except Exception as exc:  # what Lambda answers for an unhandled error
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode()
        return AWSResponse(request.url, 200, headers, _Raw(body))

    client.meta.events.register("before-send.lambda.Invoke", send)
    return client


def hold_a_dataset(world: World) -> tuple[int, list[int]]:
    """Every annotation of one dataset removed: the guard holds them in the purge."""
    dataset = world.portal.annotations[0].dataset_id
    keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == dataset]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["held"] == len(keys)
    return dataset, sorted(world.ids[k] for k in keys)


def test_the_schedule_function_explains_approves_and_releases(wired: wired_world.Wired) -> None:
    world = wired.world
    dataset, held = hold_a_dataset(world)
    report = handlers.handle_schedule({"action": "status"}, LocalContext())
    assert report["gauges"]["HeldWaiting"] == len(held)
    assert [(w["kind"], w["annotation_id"]) for w in report["waiting"]] == [("held", a) for a in held]
    assert report["waiting"][0]["next_command"].startswith(f"annotation-reconciler approve --dataset-id {dataset}")
    released = handlers.handle_schedule(
        {"detail": {"action": "release", "annotation_id": held[0], "by": "alice"}}, LocalContext()
    )
    assert released == {
        "action": "release",
        "annotation_id": held[0],
        "by": "alice",
        "released": True,
        "outcome": "released",
    }
    again = handlers.handle_schedule({"action": "release", "annotation_id": held[0], "by": "carol"}, LocalContext())
    assert (again["released"], again["outcome"]) == (True, "already released")  # the first release is kept
    json.dumps(again)  # a Lambda answer: JSON whole
    approved = handlers.handle_schedule({"action": "approve", "dataset_id": dataset, "by": "bob"}, LocalContext())
    assert approved["approved"] == len(held) - 1
    assert world.ledger() == {held[0]: "released", **{a: "quarantined" for a in held[1:]}}
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["deleted"] == len(held) - 1


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "approve", "by": "bob"}, "needs 'dataset_id'"),
        ({"action": "approve", "dataset_id": "10001", "by": "bob"}, "needs 'dataset_id'"),
        ({"action": "approve", "dataset_id": 10001}, "needs 'by'"),
        ({"action": "release", "annotation_id": True, "by": "bob"}, "needs 'annotation_id'"),
        ({"action": "release", "annotation_id": 1, "by": "  "}, "needs 'by'"),
    ],
)
def test_an_operator_action_without_what_it_needs_is_refused(
    wired: wired_world.Wired, event: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        handlers.handle_schedule(event, LocalContext())
    assert wired.world.ledger() == {}


def test_the_cli_sends_status_approve_and_release_through_the_function(
    wired: wired_world.Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    dataset, held = hold_a_dataset(world)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(via_lambda, "client_factory", lambda: lambda_client(calls))
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)  # no database client: only the function
    runner = CliRunner()

    out = runner.invoke(cli, ["--via-lambda", FUNCTION, "status", "--output", "json"])
    assert out.exit_code == 0, out.output
    assert [w["annotation_id"] for w in json.loads(out.output)["waiting"]] == held
    text_out = runner.invoke(cli, ["--via-lambda", FUNCTION, "status", "--limit", "2"])
    assert text_out.exit_code == 0 and f"and {len(held) - 2} more" in text_out.output
    assert f"approve --dataset-id {dataset}" in text_out.output

    out = runner.invoke(cli, ["--via-lambda", FUNCTION, "release", "--annotation-id", str(held[0]), "--by", "alice"])
    assert out.exit_code == 0 and f"released annotation {held[0]} (by alice)" in out.output
    out = runner.invoke(cli, ["--via-lambda", FUNCTION, "approve", "--dataset-id", str(dataset), "--by", "bob"])
    assert out.exit_code == 0 and f"approved {count(len(held) - 1, 'held annotation')} of dataset" in out.output
    assert calls[2:] == [
        {"action": "release", "annotation_id": held[0], "by": "alice"},
        {"action": "approve", "dataset_id": dataset, "by": "bob"},
    ]
    assert world.ledger() == {held[0]: "released", **{a: "quarantined" for a in held[1:]}}

    # one dataset's status through the function: its annotations to act on, by kind
    for one in world.portal.dataset_ids[:2]:
        out = runner.invoke(cli, ["--via-lambda", FUNCTION, "status", "--dataset-id", str(one), "--output", "json"])
        assert out.exit_code == 0 and calls[-1] == {"action": "status", "dataset_id": one}, out.output
        kinds = {a["annotation_id"]: a["kind"] for a in json.loads(out.output)["annotations"]}
        assert kinds == ({held[0]: "exempt", **{a: "quarantined" for a in held[1:]}} if one == dataset else {})

    # the function's refusal comes back as one line; a command the function does not take is refused locally
    out = runner.invoke(cli, ["--via-lambda", FUNCTION, "release", "--annotation-id", "999999", "--by", "alice"])
    assert out.exit_code == 1 and "has no open quarantine row" in out.output
    for command in (["status"], ["approve", "--by", "bob"]):  # an id that matches nothing is an error here too
        out = runner.invoke(cli, ["--via-lambda", FUNCTION, *command, "--dataset-id", "99999"])
        assert out.exit_code == 1 and "no dataset 99999 in the portal or the reconciler's ledger" in out.output
    out = runner.invoke(cli, ["--via-lambda", FUNCTION, "scan"])
    assert out.exit_code != 0 and "--via-lambda works with status, approve, release" in out.output
