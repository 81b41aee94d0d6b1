"""Deletion safety, round 3 (issue 25), each rule with the test that tries to break it, on the real PostgreSQL
and moto: the guard counts the dataset, not the verdicts; a failed operator command changes nothing."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from annotation_reconciler.cli.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.main import cli
from annotation_reconciler.ledger.exemptions import Released
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service import operators
from annotation_reconciler.service.evidence import wide_folder
from support.faults import inject_at, record_backoff
from support.seed import put_objects
from support.world import BUCKET, World, make_world, removed


def ledger_dump(engine: Engine) -> list[tuple[Any, ...]]:
    """Every ledger row, every column, in id order: compare before and after to prove a command wrote nothing."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT * FROM annotation_reconciler.annotation_quarantine ORDER BY id"))
        ]


def operator(world: World, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--db-url", world.db_url])


# --- the guard counts the dataset, not the verdicts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("gone_runs", "throttled_runs"),
    [
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_001", "TS_002"), id="dataset-vanished-2-of-3-throttled"),
        pytest.param(("TS_000", "TS_001"), ("TS_001",), id="two-runs-gone-1-throttled"),
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_000",), id="dataset-vanished-1-of-3-throttled"),
    ],
)
def test_rows_s3_could_not_judge_still_count_for_the_guard(
    world: World, monkeypatch: pytest.MonkeyPatch, gone_runs: tuple[str, ...], throttled_runs: tuple[str, ...]
) -> None:
    """Runs of dataset 10001 vanish (every object); their annotations are quarantined. At the purge some of their
    prefixes answer SlowDown: those rows are unknown, but they still count as going, so the guard sees the whole
    loss (more than half of the dataset) and holds the rows it could prove absent instead of deleting them."""
    record_backoff(monkeypatch)
    gone = [a for a in world.portal.annotations if a.dataset_id == 10001 and a.run_name in gone_runs]
    world.delete(*[k for k in world.portal.all_keys() if k.split("/")[1] in gone_runs and k.startswith("10001/")])
    reconciler = world.reconciler()
    assert sorted(reconciler.apply_changes(removed(*[a.metadata_key for a in gone])).quarantined) == sorted(
        world.ids[a.metadata_key] for a in gone
    )
    world.clock.advance(hours=2)
    client = boto3.client("s3", region_name="us-west-2")
    throttled = {metadata_folder(a.metadata_key) for a in gone if a.run_name in throttled_runs}
    throttled |= {wide_folder(p) for p in throttled}  # the purge lists their run folders (issue 30)
    inject_at(client, "ListObjectsV2", *throttled, status=503, code="SlowDown")
    result = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="0.5").purge()
    ids = {world.ids[a.metadata_key] for a in gone}
    assert result.deleted == [] and ids <= world.annotation_ids()
    assert len(result.unknown) == 4 * len(throttled_runs)
    assert len(result.held) == 4 * (len(gone_runs) - len(throttled_runs))
    assert result.held_datasets == {10001: (len(ids), 12)}


# --- a failed operator command changes nothing; a repeated release keeps the release -------------------------------


def test_a_second_release_keeps_the_first(world: World) -> None:
    """Issue 25 (5): `release` twice. The second finds no open row; it must not cancel the first one's exemption:
    the next scan leaves the annotation alone and no purge deletes it."""
    key = world.portal.metadata_keys[0]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    assert r.apply_changes(removed(key)).quarantined == [aid]
    first = operator(world, "release", "--annotation-id", str(aid), "--by", "alice")
    assert first.exit_code == 0, first.output
    before = ledger_dump(world.engine)
    again = operator(world, "release", "--annotation-id", str(aid), "--by", "bob")
    assert again.exit_code == 0, again.output
    assert "already released by alice" in again.output
    assert ledger_dump(world.engine) == before
    world.clock.advance(minutes=5)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    world.clock.advance(hours=2)
    assert r.purge().deleted == [] and aid in world.annotation_ids()


def test_a_release_through_the_api_twice_keeps_the_release(world: World) -> None:
    key = world.portal.metadata_keys[3]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    r.apply_changes(removed(key))
    assert operators.exemption(world.engine, aid) is None  # quarantined, not released
    assert r.release(aid, by="alice") is Released.NOW
    first = operators.exemption(world.engine, aid)
    assert first is not None and (first.annotation_id, first.released_by) == (aid, "alice")
    assert r.release(aid, by="bob") is Released.ALREADY  # the release is kept: asking again is not a failure
    assert operators.exemption(world.engine, aid) == first  # and the first one stands
    world.clock.advance(minutes=5)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    world.clock.advance(hours=2)
    assert r.purge().claimed == 0 and aid in world.annotation_ids()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("release", "--annotation-id", "{other}"), id="release-never-quarantined"),
        pytest.param(("release", "--annotation-id", "999999"), id="release-no-such-annotation"),
        pytest.param(("release", "--annotation-id", "{settled}"), id="release-a-row-the-scan-released"),
        pytest.param(("release", "--clear", "--annotation-id", "{other}"), id="clear-without-release"),
        pytest.param(("release", "--clear", "--annotation-id", "{settled}"), id="clear-a-row-the-scan-released"),
    ],
)
def test_a_failed_operator_command_changes_nothing(world: World, command: tuple[str, ...]) -> None:
    """Issue 25 (5): a command that fails (exit code 1, or 2 for an id that matches nothing) leaves every ledger
    row as it was, the exemption of an earlier release included."""
    released_key, settled_key = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(released_key, settled_key)
    r = world.reconciler()
    r.apply_changes(removed(released_key, settled_key))
    assert r.release(world.ids[released_key], by="alice")
    world.restore(settled_key)
    world.clock.advance(minutes=5)
    r.scan_shard(Scope(dataset_id=10001))  # the settled row's metadata is back: released by the scan
    assert world.ledger()[world.ids[settled_key]] == "released"
    ids = {"other": str(world.ids[world.portal.metadata_keys[2]]), "settled": str(world.ids[settled_key])}
    before = ledger_dump(world.engine)
    out = operator(world, *(part.format(**ids) for part in command))
    # an id that matches nothing anywhere is a usage error (issue 28): exit 2
    assert out.exit_code == (2 if "999999" in command else 1), out.output
    assert ledger_dump(world.engine) == before


# --- every command takes the same settings: RECONCILER_DRY_RUN, overridden by a flag that says so ---------------


def stale_in_ts_000(world: World) -> int:
    """An annotation of 10001/TS_000 whose metadata is gone from S3 (the importer's sibling cleanup would delete it)."""
    gone = world.portal.annotations[0]
    assert (gone.dataset_id, gone.run_name) == (10001, "TS_000")
    world.delete(gone.metadata_key)
    return world.ids[gone.metadata_key]


def run_cli(world: World, command: Any, args: list[str], **env: str) -> Any:
    base = {"RECONCILER_DB_URL": world.db_url, "RECONCILER_MAX_PURGE_FRACTION": "0.5", "COLUMNS": "200"}
    return CliRunner().invoke(command, args, env={**base, **env})


INGEST = ["ingest", "--bucket", BUCKET, "--dataset-id", "10001", "--run-name", "TS_000"]
CLEANUP = ["--s3-bucket", BUCKET, "--run-id", "{run}", "--yes"]


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param("true", [], False, "RECONCILER_DRY_RUN=true", id="env-true"),
        pytest.param("1", [], False, "RECONCILER_DRY_RUN=1", id="env-1"),
        pytest.param("on", [], False, "RECONCILER_DRY_RUN=on", id="env-on"),
        pytest.param("true", ["--no-dry-run"], True, "--no-dry-run", id="env-true-flag-no-dry-run"),
        pytest.param("false", ["--dry-run"], False, "--dry-run", id="env-false-flag-dry-run"),
        pytest.param("false", [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
    ],
)
def test_ingest_honours_reconciler_dry_run_and_a_flag_overrides_it(
    world: World, env: str, flags: list[str], deletes: bool, decided_by: str
) -> None:
    """Issue 25 (4): with RECONCILER_DRY_RUN=true exported, `ingest` deletes (and writes) nothing; a flag on the
    command line overrides the variable, and the output names the one that decided."""
    aid = stale_in_ts_000(world)
    out = run_cli(world, cli, [*INGEST, *flags], RECONCILER_DRY_RUN=env)
    assert out.exit_code == 0, out.output
    assert (aid not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output
    assert ("dry run: nothing" in out.output) is not deletes


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param("yes", [], False, "RECONCILER_DRY_RUN=yes", id="env-yes"),
        pytest.param("false", [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
        pytest.param("false", ["--dry-run"], False, "--dry-run", id="env-false-flag-dry-run"),
        pytest.param("true", ["--no-dry-run"], True, "--no-dry-run", id="env-true-flag-no-dry-run"),
    ],
)
def test_the_cleanup_command_honours_reconciler_dry_run(
    world: World, env: str, flags: list[str], deletes: bool, decided_by: str
) -> None:
    aid = stale_in_ts_000(world)
    with world.engine.connect() as conn:
        run = conn.execute(text("SELECT run_id FROM annotation WHERE id = :id"), {"id": aid}).scalar_one()
    args = [a.format(run=run) for a in CLEANUP] + ["--db-uri", world.db_url, *flags]
    out = run_cli(world, cleanup_stale_annotations, args, RECONCILER_DRY_RUN=env)
    assert out.exit_code == 0, out.output
    assert (aid not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param({"RECONCILER_DRY_RUN": "true"}, [], False, "RECONCILER_DRY_RUN=true", id="env-true"),
        pytest.param({"RECONCILER_DRY_RUN": "false"}, ["--dry-run"], False, "--dry-run", id="flag-dry-run"),
        pytest.param({"RECONCILER_DRY_RUN": "false"}, [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
        pytest.param({}, [], False, "the default", id="unset"),
    ],
)
def test_the_purge_command_says_what_decided_its_dry_run(
    world: World, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], flags: list[str], deletes: bool, decided_by: str
) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    monkeypatch.delenv("RECONCILER_DRY_RUN", raising=False)
    purge_env = {"RECONCILER_GRACE_PERIOD_HOURS": "1", **env}
    with world.engine.begin() as conn:  # due now by the wall clock the CLI uses
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET purge_after = :t"),
            {"t": datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)},
        )
    out = run_cli(world, cli, ["purge", "--bucket", BUCKET, *flags], **purge_env)
    assert out.exit_code == 0, out.output
    assert (world.ids[key] not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output


def test_a_dry_run_value_that_is_not_a_boolean_is_refused_by_every_command(world: World) -> None:
    aid = stale_in_ts_000(world)
    for command, args in ((cli, INGEST), (cli, ["purge", "--bucket", BUCKET])):
        out = run_cli(world, command, args, RECONCILER_DRY_RUN="maybe")
        assert out.exit_code == 2 and "RECONCILER_DRY_RUN" in out.output, out.output
    assert aid in world.annotation_ids()


@pytest.mark.parametrize(("env", "restores"), [("true", False), ("false", True)])
def test_restore_honours_reconciler_dry_run(world: World, env: str, restores: bool) -> None:
    key = world.portal.metadata_keys[0]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    assert r.purge().deleted == [aid]
    out = run_cli(
        world, cli, ["restore", "--db-url", world.db_url, "--annotation-id", str(aid)], RECONCILER_DRY_RUN=env
    )
    assert out.exit_code == 0, out.output
    assert (aid in world.annotation_ids()) is restores
    assert f"decided by RECONCILER_DRY_RUN={env}" in out.output


# --- spelling twins at any level, from the dataset folder down, are unknown ---------------------------------------


def respell_rows(world: World, old: str, new: str, keys: list[str]) -> None:
    """Rewrite the stored paths of these annotations: ``old`` becomes ``new`` in them (S3 is not touched)."""
    with world.engine.begin() as conn:
        for key in keys:
            conn.execute(
                text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
                {"p": f"s3://{BUCKET}/{key.replace(old, new, 1)}", "id": world.ids[key]},
            )


def respell_bucket(world: World, old: str, new: str) -> list[str]:
    """Move every object under ``old`` to ``new`` (a copy, then a delete: how S3 renames a folder); returns the keys
    that were under ``old``."""
    moved = [k for k in world.portal.all_keys() if k.startswith(old)]
    for key in moved:
        world.s3.copy_object(Bucket=BUCKET, Key=new + key[len(old) :], CopySource={"Bucket": BUCKET, "Key": key})
        world.s3.delete_object(Bucket=BUCKET, Key=key)
    return moved


def twin_world(engine: Engine, s3: Any, db_url: str) -> World:

    return make_world(
        engine,
        s3,
        db_url,
        PortalSpec(datasets=1, runs_per_dataset=3, annotations_per_voxel_spacing=2, odd_run_names=True),
    )


#: (where the row says, where S3 has it): the run, the Reconstructions folder, the voxel spacing folder, the
#: Annotations folder and the annotation's own folder spelled apart by letter case, Unicode form or percent/plus
#: encoding.
TWINS = [
    pytest.param("10001/TS_002/", "10001/ts_002/", id="run-case"),
    pytest.param("10001/TS 1+2 é/", "10001/TS+1%2B2+%C3%A9/", id="run-plus-percent-encoded"),
    pytest.param("10001/TS 1+2 é/", "10001/TS%201%2B2%20%C3%A9/", id="run-percent-encoded"),
    pytest.param("10001/TS_ü+plus/", "10001/TS_U\u0308+PLUS/", id="run-nfd-and-case"),
    pytest.param("10001/TS_002/Reconstructions/", "10001/TS_002/reconstructions/", id="reconstructions-case"),
    pytest.param(
        "10001/TS_002/Reconstructions/VoxelSpacing13.480/",
        "10001/TS_002/Reconstructions/voxelspacing13.480/",
        id="voxel-spacing-case",
    ),
    pytest.param(
        "10001/TS_002/Reconstructions/VoxelSpacing13.480/Annotations/100/",
        "10001/TS_002/Reconstructions/VoxelSpacing13.480/Annotations/%31%30%30/",
        id="annotation-folder-percent-encoded",
    ),
]


@pytest.mark.parametrize(("s3_has", "row_says"), TWINS)
@pytest.mark.parametrize("side", ["row-spelled-apart", "bucket-renamed"])
def test_a_twin_folder_at_any_level_makes_the_row_unknown_never_missing(
    engine: Engine, s3: Any, db_url: str, s3_has: str, row_says: str, side: str
) -> None:
    """Issue 25 (2): a row's key differs from a folder in S3 only by spelling, at some level below the dataset
    folder (the row spelled apart, or S3's folder renamed by a copy and a delete). The row's own prefix lists
    nothing, its dataset folder holds other objects: the old rules called it ordinary, quarantined and purged it.
    The scan must report it unknown, and the purge of a row quarantined by its Removed event must keep it."""
    world = twin_world(engine, s3, db_url)
    keys = [a.metadata_key for a in world.portal.annotations if a.metadata_key.startswith(s3_has)]
    assert keys
    if side == "row-spelled-apart":
        respell_rows(world, s3_has, row_says, keys)
    else:
        respell_bucket(world, s3_has, row_says)  # the rows keep their spelling; the bucket's folder moved
    ids = sorted(world.ids[k] for k in keys)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    scan = r.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and scan.held == []
    assert sorted(u.ref.id for u in scan.unknown) == ids
    assert any("spelling" in u.why for u in scan.unknown), [u.why for u in scan.unknown]
    # the Removed events of the rename (or stray ones naming the rows' keys) quarantine the rows: the purge must
    # still keep them
    stored = keys if side == "bucket-renamed" else [k.replace(s3_has, row_says, 1) for k in keys]
    assert sorted(r.apply_changes(removed(*stored)).quarantined) == ids
    world.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [] and set(ids) <= world.annotation_ids()


#: The dataset folder itself spelled apart (percent-encoded once or twice, a digit in another Unicode form): the
#: bucket's root lists the twin.
DATASET_TWINS = [
    pytest.param("1000%31/", id="dataset-percent-encoded"),
    pytest.param("\uff110001/", id="dataset-fullwidth-digit"),
    pytest.param("1000%2531/", id="dataset-encoded-twice"),
    pytest.param("\u00b90001/", id="dataset-superscript-digit"),
]


@pytest.mark.parametrize("row_says", DATASET_TWINS)
def test_a_twin_of_the_dataset_folder_makes_the_row_unknown_never_missing(
    engine: Engine, s3: Any, db_url: str, row_says: str
) -> None:
    """Issue 25 (2), the top level: a run's rows name their dataset folder in another spelling than S3's. Their
    prefixes list nothing and the folder they name holds nothing: the scan held them as a vanished dataset, but once
    their Removed events quarantined them the purge deleted them, with every file in S3 under ``10001/``. The
    root's listing shows the twin: unknown at the scan and at the purge."""
    world = twin_world(engine, s3, db_url)
    keys = [a.metadata_key for a in world.portal.annotations if a.metadata_key.startswith("10001/TS_002/")]
    assert keys
    respell_rows(world, "10001/", row_says, keys)
    ids = sorted(world.ids[k] for k in keys)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    scan = r.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and sorted(u.ref.id for u in scan.unknown) == ids
    assert sorted(r.apply_changes(removed(*(k.replace("10001/", row_says, 1) for k in keys))).quarantined) == ids
    world.clock.advance(hours=2)
    assert r.purge().deleted == [] and set(ids) <= world.annotation_ids()


def test_presence_under_a_twin_folder_or_of_a_twin_key_is_unknown(engine: Engine, s3: Any, db_url: str) -> None:
    """check_presence (the inventory's confirmation): a key whose run folder S3 now spells apart, or whose own name
    S3 spells apart, is None (S3 could not say), never False; a plainly deleted key is False, a listed one True."""
    world = twin_world(engine, s3, db_url)
    under_twin = [k for k in world.portal.metadata_keys if k.startswith("10001/TS_002/")]
    respell_bucket(world, "10001/TS_002/", "10001/ts_002/")
    others = [k for k in world.portal.metadata_keys if not k.startswith("10001/TS_002/")]
    gone, spelled, present = others[0], others[-1], others[1]
    world.delete(gone, spelled)
    folder, name = spelled.rsplit("/", 1)
    world.restore(f"{folder}/{name.upper()}")
    presence = world.reconciler().check_presence([*under_twin, gone, spelled, present])
    assert presence == {**dict.fromkeys(under_twin), gone: False, spelled: None, present: True}


class DelimiterLists:
    """Counts the LISTs a client sends: ``prefixes`` those with a delimiter, ``plain`` those without."""

    def __init__(self, client: Any) -> None:
        self.prefixes: list[str] = []
        self.plain: list[str] = []
        client.meta.events.register("before-send.s3.ListObjectsV2", self)

    def __call__(self, request: Any, **kwargs: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(request.url).query)
        (self.prefixes if "delimiter" in query else self.plain).append(query.get("prefix", [""])[0])


def test_the_twin_check_costs_one_delimiter_list_per_level_and_only_for_suspicious_rows(world: World) -> None:
    """A healthy scan sends no LIST with a delimiter; one retraction costs at most one per level (5: the bucket's
    root for the dataset folder, the run, Reconstructions, voxel spacing, Annotations) at the scan. The purge lists
    the run folder without a delimiter (its Annotations/ listing and the levels below the run in one), the bucket's
    root and the dataset folder with one: 3 LISTs."""
    client = boto3.client("s3", region_name="us-west-2")
    counted = DelimiterLists(client)
    r = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="0.5")
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    assert counted.prefixes == []
    gone = world.portal.annotations[0]
    world.delete(gone.metadata_key)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == [world.ids[gone.metadata_key]]
    assert len(counted.prefixes) == 5 and {"", "10001/"} <= set(counted.prefixes)
    world.clock.advance(hours=2)
    plain = len(counted.plain)
    assert r.purge().deleted == [world.ids[gone.metadata_key]]
    assert sorted(counted.prefixes[5:]) == ["", "10001/"]
    assert counted.plain[plain:] == [gone.metadata_key.split("/Reconstructions/")[0] + "/"]


def test_the_purge_of_rows_sharing_voxel_spacings_costs_at_most_0_3_requests_each(
    engine: Engine, s3: Any, db_url: str
) -> None:
    """Issue 30: purging whole voxel spacings (5 annotations each, the portal's density) costs one LIST per run
    folder (no delimiter: the Annotations/ listing and the twin check's levels below the run) and one LIST with a
    delimiter per dataset folder and for the bucket's root, nothing per row: 6 requests for 20 annotations."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=5, annotations_per_voxel_spacing=5))
    client = boto3.client("s3", region_name="us-west-2")
    counted = DelimiterLists(client)
    r = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="1")
    runs = sorted({a.run_name for a in world.portal.annotations if a.dataset_id == 10001})[:4]
    gone = [a.metadata_key for a in world.portal.annotations if a.dataset_id == 10001 and a.run_name in runs]
    world.delete(*gone)
    r.apply_changes(removed(*gone))
    world.clock.advance(hours=2)
    assert sorted(r.purge().deleted) == sorted(world.ids[k] for k in gone)
    assert sorted(counted.prefixes) == ["", "10001/"] and len(counted.plain) == len(runs)
    assert (len(counted.prefixes) + len(counted.plain)) / len(gone) <= 0.3


def test_the_cleanup_command_leaves_a_row_with_a_twin_folder_in_place(engine: Engine, s3: Any, db_url: str) -> None:
    world = twin_world(engine, s3, db_url)
    keys = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_002"]
    respell_bucket(world, "10001/TS_002/", "10001/Ts_002/")
    out = CliRunner().invoke(
        cleanup_stale_annotations,
        ["--s3-bucket", BUCKET, "--db-uri", world.db_url, "--dataset-id", "10001", "--no-dry-run", "--yes"],
        env={"COLUMNS": "200"},
    )
    assert out.exit_code == 0, out.output
    assert {world.ids[k] for k in keys} <= world.annotation_ids()
    assert "Ts_002" in out.output  # reported as unknown, naming the twin


def test_a_run_folder_over_the_page_limit_is_listed_prefix_by_prefix_at_the_purge(world: World) -> None:
    """The purge's one LIST per run folder must not make a big run's rows unknown for ever: a run folder over
    RECONCILER_SCAN_PAGE_LIMIT pages has its Annotations/ prefixes listed one by one, its levels with a delimiter."""
    gone = world.portal.annotations[0]
    run_folder = gone.metadata_key.split("/Reconstructions/")[0] + "/"
    frames = ((f"{run_folder}Frames/frame_{i:04d}.tiff", b"") for i in range(1001))
    put_objects(world.s3, BUCKET, frames)  # two pages of frames beside the annotations
    world.delete(gone.metadata_key)
    client = boto3.client("s3", region_name="us-west-2")
    counted = DelimiterLists(client)
    r = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="0.5", RECONCILER_SCAN_PAGE_LIMIT="1")
    r.apply_changes(removed(gone.metadata_key))
    world.clock.advance(hours=2)
    assert r.purge().deleted == [world.ids[gone.metadata_key]]
    assert counted.plain == [run_folder, metadata_folder(gone.metadata_key)]
    assert len(counted.prefixes) == 5  # the root, the dataset folder, the run, Reconstructions/, the voxel spacing
