"""The operator's commands as a new user meets them (issue 28), through the CLI on the real PostgreSQL and moto:
refusals that say what to do, the history of deletions, one vocabulary of options, the cleanup's guard."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from annotation_reconciler.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.ingest import ingest
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_bucket import write_bucket
from annotation_reconciler.local.synthetic_rows import write_deposition, write_rows
from annotation_reconciler.scope import Scope
from support.world import BUCKET, World, removed


@pytest.fixture(autouse=True)
def in_process_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("RECONCILER_DB_URL", "RECONCILER_BUCKET", "RECONCILER_DRY_RUN", "RECONCILER_MAX_PURGE_FRACTION"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def cleanup(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cleanup_stale_annotations, list(args), input=stdin)


def refused(result: Result, code: int = 2) -> str:
    """The one-line refusal of ``result``: exit ``code``, nothing on stdout, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


# --- 1. refusals that say what to do --------------------------------------------------------------------------


@pytest.fixture
def unmigrated(db_factory: DatabaseFactory, worker_id: str) -> Iterator[str]:
    """A database with the portal's tables and none of the reconciler's."""
    name = f"unmigrated_{worker_id}"
    url = db_factory.empty(name)
    engine = make_engine(url)
    create_portal_schema(engine)
    engine.dispose()
    yield url
    db_factory.drop(name)


def test_every_command_on_an_unmigrated_database_names_migrate(unmigrated: str, s3: Any) -> None:
    commands = {
        "status": run("status", "--db-url", unmigrated),
        "purge": run("purge", "--db-url", unmigrated, "--bucket", BUCKET),
        "scan": run("scan", "--db-url", unmigrated, "--bucket", BUCKET, "--dataset-id", "1"),
        "approve": run("approve", "--db-url", unmigrated, "--dataset-id", "1"),
        "release": run("release", "--db-url", unmigrated, "--annotation-id", "1"),
        "restore": run("restore", "--db-url", unmigrated, "--annotation-id", "1"),
        "history": run("history", "--db-url", unmigrated),
        "cleanup-stale-annotations": cleanup("--db-uri", unmigrated, "--s3-bucket", BUCKET, "--run-id", "1"),
    }
    for name, result in commands.items():
        line = refused(result)
        assert "has no reconciler tables" in line and "`annotation-reconciler migrate`" in line, (name, line)
        assert "password" not in line.lower() or "***" in line


def test_a_driver_error_is_one_line_that_says_what_to_do(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(text("DROP ROLE IF EXISTS newcomer"))
        conn.execute(text("CREATE ROLE newcomer LOGIN PASSWORD 'pw'"))
    url = world.db_url.replace("://", "://newcomer:pw@", 1).split("@", 1)
    url_as_newcomer = url[0] + "@" + url[1].split("@", 1)[-1]
    try:
        line = refused(run("status", "--db-url", url_as_newcomer))
        assert "permission denied" in line and "SQLSTATE 42501" in line and "annotation-reconciler grants" in line
    finally:
        with world.engine.begin() as conn:
            conn.execute(text("DROP OWNED BY newcomer"))
            conn.execute(text("DROP ROLE newcomer"))


def test_an_unknown_reconciler_variable_is_named_with_the_closest_known_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_DRYRUN", "false")
    monkeypatch.setenv("RECONCILER_GRACE_HOURS", "1")
    line = refused(run("status", "--db-url", world.db_url))
    assert "RECONCILER_DRYRUN is not a setting of the reconciler (did you mean RECONCILER_DRY_RUN?)" in line
    assert (
        "RECONCILER_GRACE_HOURS is not a setting of the reconciler (did you mean RECONCILER_GRACE_PERIOD_HOURS?)"
        in line
    )
    line = refused(cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--run-id", "1"))
    assert "did you mean RECONCILER_DRY_RUN?" in line
    monkeypatch.delenv("RECONCILER_DRYRUN")
    monkeypatch.delenv("RECONCILER_GRACE_HOURS")
    assert run("status", "--db-url", world.db_url).exit_code == 0


def test_ids_that_match_nothing_are_an_error(world: World) -> None:
    line = refused(run("approve", "--db-url", world.db_url, "--dataset-id", "99999"))
    assert "no dataset 99999" in line
    line = refused(run("release", "--db-url", world.db_url, "--annotation-id", "99999"))
    assert "no annotation 99999" in line
    line = refused(run("release", "--db-url", world.db_url, "--annotation-id", "99999", "--clear"))
    assert "no annotation 99999" in line
    # a real dataset with nothing held: said so, not "approved 0"
    out = run("approve", "--db-url", world.db_url, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert out.exit_code == 0 and "has no held annotations: nothing to approve" in out.stdout


def test_a_scope_whose_prefix_holds_none_of_its_metadata_exits_1_naming_bucket_prefix_and_reason(
    world: World,
) -> None:
    wrong = f"s3://{BUCKET}/staging/"
    dataset = str(world.portal.dataset_ids[0])
    result = run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--s3-prefix", wrong, "--dataset-id", dataset)
    assert result.exit_code == 1, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    assert f"bucket {BUCKET} under prefix {wrong}" in line and "first reason: annotation " in line
    assert "Traceback" not in result.output
    result = cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--s3-prefix", wrong, "--dataset-id", dataset)
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    assert f"bucket {BUCKET} under prefix {wrong}" in line and "first reason: annotation " in line
    # the right prefix: exit 0, no diagnosis
    ok = run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset)
    assert ok.exit_code == 0 and "Error" not in ok.stderr


def test_a_scope_where_every_row_is_unknown_exits_1(world: World) -> None:
    first = world.ids[world.portal.annotations[0].metadata_key]
    with world.engine.begin() as conn:
        run_id = conn.execute(text("SELECT run_id FROM annotation WHERE id = :i"), {"i": first}).scalar_one()
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = 's3://elsewhere/' || id WHERE run_id = :r"), {"r": run_id}
        )
    result = cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--run-id", str(run_id))
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    assert "does not map to a key in bucket" in line and f"bucket {BUCKET} under prefix s3://{BUCKET}/" in line


# --- 2. history -----------------------------------------------------------------------------------------------


def purge_two(world: World) -> tuple[int, int]:
    """Two annotations of the first dataset purged: one quarantined by an event, one by a scan (its ledger row
    then names an approver, as a held row's does)."""
    by_event, by_scan = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(by_event, by_scan)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.5")
    r.apply_changes(removed(by_event))
    r.scan_shard(Scope(dataset_id=world.portal.dataset_ids[0]))
    world.clock.advance(hours=2)
    assert sorted(r.purge().deleted) == sorted([world.ids[by_event], world.ids[by_scan]])
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE annotation_reconciler.annotation_quarantine SET approved_by = 'frank' WHERE annotation_id = :i"
            ),
            {"i": world.ids[by_scan]},
        )
    return world.ids[by_event], world.ids[by_scan]


def test_history_lists_every_deletion_and_restore_with_the_command_that_undoes_it(world: World) -> None:
    assert run("history", "--db-url", world.db_url).stdout == "no deletions recorded\n"
    by_event, by_scan = purge_two(world)
    restored = run("restore", "--db-url", world.db_url, "--annotation-id", str(by_event), "--no-dry-run", "--by", "ann")
    assert restored.exit_code == 0, restored.output
    result = run("history", "--db-url", world.db_url, "--output", "json")
    assert result.exit_code == 0 and result.stderr == ""
    entries = {e["annotation_id"]: e for e in json.loads(result.stdout)["deletions"]}
    assert set(entries) == {by_event, by_scan}
    assert (entries[by_event]["source"], entries[by_scan]["source"]) == ("event", "scan")
    assert entries[by_scan]["approved_by"] == "frank" and entries[by_scan]["deleted_by"]
    assert entries[by_scan]["undo"] == f"annotation-reconciler restore --annotation-id {by_scan} --no-dry-run"
    assert entries[by_event]["undo"] is None and entries[by_event]["restored_by"] == "ann"
    assert entries[by_scan]["metadata_key"] == world.portal.metadata_keys[1]
    text_out = run("history", "--db-url", world.db_url).stdout
    assert text_out.startswith("2 deletions, 1 of them restored (newest first):\n")
    assert f"deleted annotation {by_scan} (dataset {world.portal.dataset_ids[0]}" in text_out
    assert "by scan, approved by frank" in text_out and "by event" in text_out
    assert f"    key: {world.portal.metadata_keys[1]}\n" in text_out
    assert f"    undo: annotation-reconciler restore --annotation-id {by_scan} --no-dry-run\n" in text_out
    assert "    restored " in text_out and " by ann\n" in text_out
    # undo as printed: the annotation is back, and the history says so
    undo = entries[by_scan]["undo"].split()[1:]
    assert run(*undo, "--db-url", world.db_url).exit_code == 0
    assert {by_event, by_scan} <= world.annotation_ids()


def test_history_filters_by_dataset_and_time_and_caps_text(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    purge_two(world)
    other = str(world.portal.dataset_ids[1])
    assert run("history", "--db-url", world.db_url, "--dataset-id", other).stdout == (
        f"no deletions recorded for dataset {other}\n"
    )
    future = run("history", "--db-url", world.db_url, "--since", "2100-01-01", "--output", "json")
    assert json.loads(future.stdout) == {"deletions": []}
    past = run("history", "--db-url", world.db_url, "--since", "2000-01-01T00:00:00Z", "--output", "json")
    assert len(json.loads(past.stdout)["deletions"]) == 2
    assert "not an ISO 8601 time" in refused(run("history", "--db-url", world.db_url, "--since", "yesterday"))
    monkeypatch.setattr("annotation_reconciler.cli.history.TEXT_LIMIT", 1)
    capped = run("history", "--db-url", world.db_url).stdout
    assert capped.count("deleted annotation") == 1 and "and 1 more (all of them: --output json)" in capped


# --- 3. one vocabulary of options ---------------------------------------------------------------------------------


def test_version_on_both_entry_points() -> None:
    from importlib.metadata import version

    out = run("--version")
    assert out.exit_code == 0 and out.stdout == f"annotation-reconciler, version {version('annotation-reconciler')}\n"
    out = cleanup("--version")
    assert out.exit_code == 0 and out.stdout.startswith("cleanup-stale-annotations, version ")


def test_db_url_and_db_uri_are_one_option_everywhere(world: World) -> None:
    assert run("status", "--db-uri", world.db_url, "--output", "json").exit_code == 0
    assert run("history", "--db-uri", world.db_url).exit_code == 0
    run_id = "1"
    for option in ("--db-url", "--db-uri"):
        out = cleanup(option, world.db_url, "--s3-bucket", BUCKET, "--run-id", run_id)
        assert out.exit_code == 0, out.output
        assert "Found 0 stale annotations." in out.stdout


def test_anonymous_reads_the_bucket_without_credentials_on_scan_and_purge(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    from annotation_reconciler.cli import operate

    real = operate.make_s3_client

    def recording(**kwargs: Any) -> Any:
        calls.append(kwargs.get("anonymous", False))
        return real(**kwargs)

    monkeypatch.setattr(operate, "make_s3_client", recording)
    dataset = str(world.portal.dataset_ids[0])
    scan = run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset, "--anonymous")
    assert scan.exit_code == 0, scan.output
    purge = run("purge", "--db-url", world.db_url, "--bucket", BUCKET, "--anonymous")
    assert purge.exit_code == 0, purge.output
    assert calls == [True, True]
    assert run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset).exit_code == 0
    assert calls == [True, True, False]


# --- 4. one guard everywhere ----------------------------------------------------------------------------------------


def stale_in_first_dataset(world: World, count: int) -> list[int]:
    keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == world.portal.dataset_ids[0]][:count]
    world.delete(*keys)
    return sorted(world.ids[k] for k in keys)


def test_cleanup_holds_at_the_shipped_fraction_and_max_purge_fraction_1_lifts_it(world: World) -> None:
    stale = stale_in_first_dataset(world, 4)  # 4 of the dataset's annotations: beyond 0.1 of it
    base = ("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--dataset-id", str(world.portal.dataset_ids[0]))
    held = cleanup(*base, "--no-dry-run", "--yes")
    assert held.exit_code == 1 and "all 4 stale annotations are held" in held.stderr
    assert set(stale) <= world.annotation_ids()
    lifted = cleanup(*base, "--no-dry-run", "--yes", "--max-purge-fraction", "1")
    assert lifted.exit_code == 0, lifted.output
    assert "Deleted 4 stale annotations" in lifted.stdout
    assert not set(stale) & world.annotation_ids()


def test_the_environment_sets_the_cleanups_guard_as_it_does_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = stale_in_first_dataset(world, 4)
    monkeypatch.setenv("RECONCILER_MAX_PURGE_FRACTION", "1")
    base = ("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert cleanup(*base, "--no-dry-run", "--yes").exit_code == 0
    assert not set(stale) & world.annotation_ids()
    monkeypatch.setenv("RECONCILER_MAX_PURGE_FRACTION", "2")
    assert "--max-purge-fraction (RECONCILER_MAX_PURGE_FRACTION)" not in refused(cleanup(*base))
    assert "RECONCILER_MAX_PURGE_FRACTION=2 is out of range" in refused(cleanup(*base))


def test_the_prompt_lists_what_would_go_per_dataset_and_one_is_singular(world: World) -> None:
    [one] = stale_in_first_dataset(world, 1)
    second = [a.metadata_key for a in world.portal.annotations if a.dataset_id == world.portal.dataset_ids[1]][:1]
    world.delete(*second)
    other = world.ids[second[0]]
    out = cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--no-dry-run", "--yes", stdin="")
    assert out.exit_code == 0, out.output
    assert "Found 2 stale annotations:" in out.stdout and ": 1 annotation\n" in out.stdout
    assert "What would go:\n" in out.stderr
    assert f"  dataset {world.portal.dataset_ids[0]}: 1 annotation [{one}]\n" in out.stderr
    assert f"  dataset {world.portal.dataset_ids[1]}: 1 annotation [{other}]\n" in out.stderr
    dry = cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert "Found 0 stale annotations." in dry.stdout
    world.delete(
        *[a.metadata_key for a in world.portal.annotations if a.dataset_id == world.portal.dataset_ids[0]][1:2]
    )
    single = cleanup("--db-uri", world.db_url, "--s3-bucket", BUCKET, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert "Found 1 stale annotation:\n" in single.stdout


# --- 5. ingest keeps what is stored -------------------------------------------------------------------------------


def ingest_table(output: str) -> dict[str, list[int]]:
    """The summary table's rows: table name -> its numbers."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


def test_reingesting_unchanged_data_writes_nothing_without_an_https_prefix(
    engine: Any, db_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=1, annotations_per_voxel_spacing=2)
    portal = build_portal(spec)
    write_bucket(boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2"), portal)
    write_rows(engine, portal)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT id, https_metadata_path FROM annotation ORDER BY id")).all()
    assert all(p.startswith(spec.https_prefix) for _, p in before)  # not the bucket's public URL
    args = ["--bucket", BUCKET, "--dataset-id", str(spec.first_dataset_id), "--db-url", db_url]
    out = CliRunner().invoke(ingest, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    # the synthetic rows lack a few fields the metadata has (the importer fills them); no path is rewritten
    assert not {"dataset", "run", "tomogram_voxel_spacing"} & set(ingest_table(out.stdout))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, https_metadata_path FROM annotation ORDER BY id")).all() == before
    again = CliRunner().invoke(ingest, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0 and ingest_table(again.stdout) == {}  # nothing inserted, updated or removed
    # an explicit prefix still wins
    moved = CliRunner().invoke(ingest, [*args, "--https-prefix", "https://mirror.example.org/"], env={"COLUMNS": "200"})
    assert moved.exit_code == 0 and ingest_table(moved.stdout)["annotation"][1] == len(before)


# --- 6. one JSON document on stdout; 7. readable when piped or narrow -------------------------------------------


def test_scan_and_purge_print_one_json_document_on_stdout(world: World) -> None:
    [gone] = stale_in_first_dataset(world, 1)
    dataset = str(world.portal.dataset_ids[0])
    scan = run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset, "--output", "json")
    assert scan.exit_code == 0, scan.output
    [shard] = json.loads(scan.stdout)["shards"]
    assert (shard["dataset_id"], shard["quarantined"], shard["missing"]) == (int(dataset), [gone], 1)
    assert shard["present"] == shard["annotations"] - 1
    purge = run("purge", "--db-url", world.db_url, "--bucket", BUCKET, "--output", "json")
    assert purge.exit_code == 0, purge.output
    document = json.loads(purge.stdout)
    assert document["dry_run"] is True and document["claimed"] == 0 and document["deleted"] == []


def test_ingest_prints_one_json_document_on_stdout(
    engine: Any, db_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=1, annotations_per_voxel_spacing=2)
    portal = build_portal(spec)
    write_bucket(boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2"), portal)
    write_deposition(engine, spec)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    args = ["--bucket", BUCKET, "--dataset-id", str(spec.first_dataset_id), "--db-url", db_url, "--dry-run"]
    out = CliRunner().invoke(ingest, [*args, "--output", "json"])
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert document["dry_run"] is True and document["inserted"]["annotation"] == 2 and document["ok"] is True
    assert document["voxel_spacings"][0]["metadata_read"] == 2


def test_piped_output_is_one_line_per_row_and_never_cuts_a_key(world: World) -> None:
    dataset = str(world.portal.dataset_ids[0])
    narrow = {"COLUMNS": "40"}
    args = ["scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset]
    out = CliRunner().invoke(cli, args, env=narrow)
    assert out.exit_code == 0, out.output
    n = sum(a.dataset_id == world.portal.dataset_ids[0] for a in world.portal.annotations)
    assert out.stdout == (
        f"dataset {dataset}: {n} annotations, {n} present, 0 missing, 0 quarantined, 0 released, 0 held, 0 unknown\n"
    )


def test_ingest_prints_each_removed_prefix_whole_on_a_narrow_terminal(
    engine: Any, db_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=1, annotations_per_voxel_spacing=2)
    portal = build_portal(spec)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2")
    write_bucket(client, portal)
    ids = write_rows(engine, portal)
    gone = portal.annotations[0]
    client.delete_object(Bucket=BUCKET, Key=gone.metadata_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    args = ["--bucket", BUCKET, "--dataset-id", str(spec.first_dataset_id), "--db-url", db_url, "--dry-run"]
    out = CliRunner().invoke(ingest, [*args, "--max-purge-fraction", "1"], env={"COLUMNS": "40"})
    assert out.exit_code == 0, out.output
    prefix = gone.metadata_key.split("Annotations/")[0]
    assert len(prefix) > 40
    assert f"{prefix}: would remove stale annotations [{ids[gone.metadata_key]}]\n" in out.stdout


def test_scan_draws_its_progress_on_a_terminals_stderr_only(world: World) -> None:
    import io

    from rich.console import Console

    from annotation_reconciler.cli.operate import shard_progress

    terminal = io.StringIO()
    with shard_progress(2, Console(file=terminal, force_terminal=True, width=80)) as advance:
        advance("dataset 10001")
        advance("dataset 10002")
    assert "2/2" in terminal.getvalue()
    piped = io.StringIO()
    with shard_progress(2, Console(file=piped, force_terminal=False)) as advance:
        advance("dataset 10001")
    assert piped.getvalue() == ""
    # through the command, piped: stderr has no progress, stdout only the rows
    out = run("scan", "--db-url", world.db_url, "--bucket", BUCKET)
    assert out.exit_code == 0 and out.stderr == ""
    assert len(out.stdout.splitlines()) == len(world.portal.dataset_ids)


def test_approve_release_and_restore_print_one_json_document(world: World) -> None:
    _, by_scan = purge_two(world)
    dataset = str(world.portal.dataset_ids[0])
    approve = run("approve", "--db-url", world.db_url, "--dataset-id", dataset, "--by", "eve", "--output", "json")
    assert approve.exit_code == 0 and json.loads(approve.stdout) == {
        "dataset_id": int(dataset),
        "approved": 0,
        "by": "eve",
    }
    dry = run("restore", "--db-url", world.db_url, "--annotation-id", str(by_scan), "--output", "json")
    assert dry.exit_code == 0, dry.output
    document = json.loads(dry.stdout)
    assert document["dry_run"] is True and document["annotations"] == [by_scan] and document["rows"]["annotation"] == 1
    assert "dry run" in dry.stderr and by_scan not in world.annotation_ids()
    key = world.portal.metadata_keys[2]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    released = run("release", "--db-url", world.db_url, "--annotation-id", str(world.ids[key]), "--by", "bob",
                   "--output", "json")  # fmt: skip
    assert released.exit_code == 0, released.output
    assert json.loads(released.stdout) == {"annotation_id": world.ids[key], "outcome": "released", "by": "bob"}
    cleared = run("release", "--db-url", world.db_url, "--annotation-id", str(world.ids[key]), "--clear", "--output",
                  "json")  # fmt: skip
    assert json.loads(cleared.stdout)["outcome"] == "cleared"
