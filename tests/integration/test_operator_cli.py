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

from annotation_reconciler.cli.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.ingest import ingest
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_bucket import write_bucket
from annotation_reconciler.local.synthetic_rows import write_deposition, write_rows
from annotation_reconciler.rules.scope import Scope
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
    from annotation_reconciler.cli import reconcile

    real = reconcile.make_s3_client

    def recording(**kwargs: Any) -> Any:
        calls.append(kwargs.get("anonymous", False))
        return real(**kwargs)

    monkeypatch.setattr(reconcile, "make_s3_client", recording)
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
    """The summary's rows (piped: one line per table): table name -> its numbers."""
    rows = {}
    for line in output.splitlines():
        found = re.fullmatch(
            r"  (\w+): (?:would )?insert(?:ed)? (\d+), (?:would )?update(?:d)? (\d+), "
            r"(?:would )?remove(?:d)? (\d+)",
            line,
        )
        if found:
            rows[found[1]] = [int(n) for n in found.groups()[1:]]
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
    assert (shard["dataset_id"], shard["quarantined"], shard["stale"]) == (int(dataset), [gone], 1)
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
        f"dataset {dataset}: {n} annotations, {n} present, 0 stale, 0 quarantined, 0 released, 0 held, 0 unknown\n"
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


def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress bars draw on a terminal's stderr: here the command's stderr, as a terminal 80 columns wide."""
    from rich.console import Console

    monkeypatch.setattr(
        "annotation_reconciler.cli.terminal.stderr_console",
        lambda: Console(stderr=True, force_terminal=True, width=80),
    )


def test_scan_draws_its_progress_on_a_terminals_stderr_only(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # piped: stderr has no progress, stdout only the rows
    out = run("scan", "--db-url", world.db_url, "--bucket", BUCKET)
    assert out.exit_code == 0 and out.stderr == ""
    assert len(out.stdout.splitlines()) == len(world.portal.dataset_ids)
    on_a_terminal(monkeypatch)
    drawn = run("scan", "--db-url", world.db_url, "--bucket", BUCKET)
    assert drawn.exit_code == 0 and drawn.stdout == out.stdout
    assert f"{len(world.portal.dataset_ids)}/{len(world.portal.dataset_ids)}" in drawn.stderr


def test_purge_draws_its_progress_on_a_terminals_stderr_only(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = world.portal.metadata_keys[:3]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)  # the command runs on the real clock, later still: the rows are due
    monkeypatch.setenv("RECONCILER_MAX_PURGE_FRACTION", "1")  # a dry run the guard does not hold: it can run twice
    piped = run("purge", "--db-url", world.db_url, "--bucket", BUCKET)
    assert piped.exit_code == 0 and piped.stderr == "", piped.output
    assert piped.stdout.startswith("claimed 3: would purge 3, ")
    on_a_terminal(monkeypatch)
    drawn = run("purge", "--db-url", world.db_url, "--bucket", BUCKET)
    assert drawn.exit_code == 0 and drawn.stdout == piped.stdout, drawn.output
    assert "purging" in drawn.stderr and "3/3" in drawn.stderr
    assert world.annotation_ids() >= {world.ids[k] for k in keys}  # a dry run: nothing deleted


def test_ingest_draws_its_progress_on_a_terminals_stderr_only(
    engine: Any, db_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=1, annotations_per_voxel_spacing=2)
    portal = build_portal(spec)
    write_bucket(boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2"), portal)
    write_deposition(engine, spec)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    args = ["--bucket", BUCKET, "--dataset-id", str(spec.first_dataset_id), "--db-url", db_url, "--dry-run"]
    piped = CliRunner().invoke(ingest, args)
    assert piped.exit_code == 0 and piped.stderr == "", piped.output
    on_a_terminal(monkeypatch)
    drawn = CliRunner().invoke(ingest, args)
    assert drawn.exit_code == 0 and drawn.stdout == piped.stdout, drawn.output
    assert "2/2" in drawn.stderr  # two voxel spacings


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


# --- 8. status lists the ids to act on; keys whole at 80 columns ---------------------------------------------------


def long_key_of(world: World, key: str) -> str:
    """Point the annotation of ``key`` at a longer key (a run with a long name), absent from S3."""
    parts = key.split("/")
    long_key = "/".join([parts[0], parts[1] + "_" + "long-run-name-" * 6, *parts[2:]])
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :i"),
            {"p": f"s3://{BUCKET}/{long_key}", "i": world.ids[key]},
        )
    return long_key


def acted_on(world: World) -> dict[str, Any]:
    """Every kind of row ``status`` lists, each through the path that makes it: the first dataset has two plainly
    quarantined rows (one with a long key), one its purge could not decide, one released and one restored by an
    operator; every row of the second dataset is held by the guard."""
    d0, d1 = world.portal.dataset_ids[:2]
    first = [a.metadata_key for a in world.portal.annotations if a.dataset_id == d0]
    second = [a.metadata_key for a in world.portal.annotations if a.dataset_id == d1]
    restored_key = first[4]
    world.delete(restored_key, *second)
    world.reconciler().apply_changes(removed(restored_key))
    world.reconciler().scan_shard(Scope(dataset_id=d1))
    world.clock.advance(hours=2)
    purged = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.1").purge()
    assert purged.deleted == [world.ids[restored_key]] and len(purged.held) == len(second)
    out = run(
        "restore",
        "--db-url",
        world.db_url,
        "--annotation-id",
        str(world.ids[restored_key]),
        "--no-dry-run",
        "--by",
        "ann",
    )
    assert out.exit_code == 0, out.output
    long_key = long_key_of(world, first[0])
    world.delete(first[0], first[1], first[2], first[3])
    world.reconciler().apply_changes(removed(long_key, first[1], first[2], first[3]))
    with world.engine.begin() as conn:  # the purge's re-check could not decide it (S3 throttled, say)
        conn.execute(
            text(
                "UPDATE annotation_reconciler.annotation_quarantine SET unknown_reason = 'S3 said SlowDown' "
                "WHERE annotation_id = :i AND status = 'quarantined'"
            ),
            {"i": world.ids[first[2]]},
        )
    out = run("release", "--db-url", world.db_url, "--annotation-id", str(world.ids[first[3]]), "--by", "bob")
    assert out.exit_code == 0, out.output
    return {
        "quarantined": {world.ids[first[0]]: long_key, world.ids[first[1]]: first[1]},
        "unknown": {world.ids[first[2]]: first[2]},
        "exempt": {world.ids[first[3]]: first[3], world.ids[restored_key]: restored_key},
        "held": {world.ids[k]: k for k in second},
        "restored": world.ids[restored_key],
        "released": world.ids[first[3]],
    }


def test_status_lists_the_quarantined_held_unknown_and_exempt_annotations_whole_in_json(world: World) -> None:
    rows = acted_on(world)
    d0, d1 = world.portal.dataset_ids[:2]
    out = run("status", "--db-url", world.db_url, "--output", "json")
    assert out.exit_code == 0 and out.stderr == "", out.output
    listed = json.loads(out.stdout)["annotations"]
    for kind in ("quarantined", "unknown", "exempt", "held"):
        assert {a["annotation_id"]: a["key"] for a in listed if a["kind"] == kind} == rows[kind], kind
    assert all(a["since"] and a["reason"] for a in listed)
    by_id = {a["annotation_id"]: a for a in listed}
    assert "S3 said SlowDown" in by_id[next(iter(rows["unknown"]))]["reason"]
    assert by_id[rows["restored"]]["reason"].startswith("restored by ann")
    assert by_id[rows["released"]]["reason"].startswith("released by bob")
    # the restored annotation is not called "released by operator" anywhere
    released = json.loads(out.stdout)["released_by_operator"]
    assert [e["annotation_id"] for e in released] == [rows["released"]]
    # one dataset: its rows and its counts only
    one = json.loads(run("status", "--db-url", world.db_url, "--dataset-id", str(d1), "--output", "json").stdout)
    assert {a["annotation_id"] for a in one["annotations"]} == set(rows["held"])
    assert one["by_status"] == {"held": len(rows["held"])}
    assert {w["dataset_id"] for w in one["waiting"]} == {d1}
    other = json.loads(run("status", "--db-url", world.db_url, "--dataset-id", str(d0), "--output", "json").stdout)
    assert not set(rows["held"]) & {a["annotation_id"] for a in other["annotations"]}
    assert "held" not in other["by_status"] and other["by_status"]["quarantined"] == 3
    assert "no dataset 99999 in the portal" in refused(run("status", "--db-url", world.db_url, "--dataset-id", "99999"))


def test_status_text_lists_ids_keys_since_and_reason_capped_and_never_cuts_a_key_at_80_columns(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = acted_on(world)
    monkeypatch.setattr("annotation_reconciler.cli.status_view.LISTED_SHOWN", 5)
    out = CliRunner().invoke(cli, ["status", "--db-url", world.db_url], env={"COLUMNS": "80"})
    assert out.exit_code == 0 and out.stderr == "", out.output
    lines = out.stdout.splitlines()
    for kind in ("quarantined", "unknown", "exempt"):
        for annotation_id, key in rows[kind].items():
            [line] = [x for x in lines if x.startswith(f"  {kind} {annotation_id} ")]
            assert f" {key} " in line and " since 20" in line, line
    long_key = max(rows["quarantined"].values(), key=len)
    assert len(long_key) > 80
    # wherever the long key shows (its listing, its waiting row), it is whole on one line
    assert all(long_key in x for x in lines if "long-run-name" in x) and sum(long_key in x for x in lines) >= 2
    held = [x for x in lines if x.startswith("  held ")]
    assert len(held) == 5 and all(any(f" {k} " in x for k in rows["held"].values()) for x in held)
    assert f"  and {len(rows['held']) - 5} more held (all of them: --output json)" in lines
    [restored] = [x for x in lines if x.startswith(f"  exempt {rows['restored']} ")]
    assert "restored by ann" in restored
    assert not [x for x in lines if "released by ann" in x]
    # the next-command hints stay
    assert any(f"approve --dataset-id {world.portal.dataset_ids[1]}" in x for x in lines)


# --- 9. counts agree with their nouns ------------------------------------------------------------------------------


def test_one_is_singular_in_every_message_that_counts(world: World) -> None:
    by_event, _ = purge_two(world)
    dry = run("restore", "--db-url", world.db_url, "--annotation-id", str(by_event))
    assert dry.exit_code == 0 and dry.stdout.startswith("would restore 1 annotation (rows: annotation 1, "), dry.output
    done = run("restore", "--db-url", world.db_url, "--annotation-id", str(by_event), "--no-dry-run", "--by", "ann")
    assert done.exit_code == 0 and done.stdout.startswith("restored 1 annotation (rows: annotation 1, "), done.output
    history = run("history", "--db-url", world.db_url, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert history.stdout.startswith("2 deletions, 1 of them restored")
    # one held annotation: approved and waiting in the singular
    key = world.portal.metadata_keys[5]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'held' WHERE annotation_id = :i"),
            {"i": world.ids[key]},
        )
    status = run("status", "--db-url", world.db_url)
    assert "1 annotation waits (held, failed, unknown or overdue):" in status.stdout, status.stdout
    assert "\nheld: 1 annotation (" in status.stdout
    dataset = str(world.portal.dataset_ids[0])
    approved = run("approve", "--db-url", world.db_url, "--dataset-id", dataset)
    assert approved.stdout.startswith(f"approved 1 held annotation of dataset {dataset};"), approved.output
    scan = run("scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", dataset)
    assert scan.exit_code == 0 and "annotations, " in scan.stdout and " 1 annotations" not in scan.stdout
