"""``cleanup-stale-annotations`` on the real PostgreSQL and moto: report, confirmation, scopes, path forms."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from annotation_reconciler.cli import cleanup_stale_annotations as module
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticAnnotation
from annotation_reconciler.service import cleanup as cleanup_run
from annotation_reconciler.service import survey
from annotation_reconciler.storage import make_s3_client
from annotation_reconciler.storage.counting import RequestCounter
from support.faults import inject_at
from support.world import BUCKET, SNAPSHOT, World, make_world, removed

SPEC = PortalSpec(datasets=2, runs_per_dataset=2, voxel_spacings_per_run=2, annotations_per_voxel_spacing=3)


@pytest.fixture(autouse=True)
def in_process_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def world_spec() -> PortalSpec:
    return SPEC


def run_ids(world: World) -> dict[tuple[int, str], int]:
    with world.engine.connect() as conn:
        return {(d, n): i for i, d, n in conn.execute(text("SELECT id, dataset_id, name FROM run")).all()}


def stored_paths(world: World) -> dict[int, str]:
    with world.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, s3_metadata_path FROM annotation")).all())


def annotation_runs(world: World) -> dict[int, int]:
    with world.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, run_id FROM annotation")).all())


def pick(world: World, keep: Callable[[SyntheticAnnotation], bool]) -> list[SyntheticAnnotation]:
    return [a for a in world.portal.annotations if keep(a)]


def make_stale(world: World, annotations: list[SyntheticAnnotation]) -> set[int]:
    world.delete(*(a.metadata_key for a in annotations))
    return {world.ids[a.metadata_key] for a in annotations}


def invoke(world: World, *args: str, stdin: str | None = None) -> Result:
    """The command on ``world`` with the mass-deletion guard lifted (``--max-purge-fraction 1``: these tests are
    about other rules; a later ``--max-purge-fraction`` in ``args`` wins; the guard's own tests give one)."""
    return CliRunner().invoke(
        module.cleanup_stale_annotations,
        ["--s3-bucket", BUCKET, "--db-uri", world.db_url, "--max-purge-fraction", "1", *args],
        input=stdin,
        catch_exceptions=False,
    )


def two_runs_stale(world: World) -> set[int]:
    """Stale annotations in two runs of the first dataset: one in TS_000, two in TS_001."""
    first = world.portal.dataset_ids[0]
    a = pick(world, lambda x: x.dataset_id == first and x.run_name == "TS_000")[:1]
    b = pick(world, lambda x: x.dataset_id == first and x.run_name == "TS_001")[1:3]
    return make_stale(world, a + b)


def expected_report(world: World, stale: set[int]) -> str:
    paths = stored_paths(world)
    by_run: dict[int, list[int]] = {}
    with world.engine.connect() as conn:
        for aid, rid in conn.execute(text("SELECT id, run_id FROM annotation ORDER BY run_id, id")).all():
            if aid in stale:
                by_run.setdefault(rid, []).append(aid)
    lines = [f"Found {len(stale)} stale annotation{'s' if len(stale) != 1 else ''}:"]
    for rid, aids in by_run.items():
        lines.append(f"  Run ID {rid}: {len(aids)} annotation{'s' if len(aids) != 1 else ''}")
        lines += [f"    - Annotation ID {aid}: {paths[aid]}" for aid in aids]
    return "\n".join(lines)


def test_dry_run_prints_the_report_and_deletes_nothing(world: World) -> None:
    stale = two_runs_stale(world)
    before = world.annotation_ids()
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(expected_report(world, stale) + "\n")
    assert result.output.rstrip().endswith(
        "Dry run mode: No deletions performed.\nRun with --no-dry-run to perform deletions."
    )
    assert world.annotation_ids() == before and world.ledger() == {}


def test_confirmed_deletion_removes_exactly_the_stale_annotations_and_their_children(world: World) -> None:
    stale = two_runs_stale(world)
    before = world.annotation_ids()
    assert world.children_of(stale) > 0
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run", stdin="y\n")
    assert result.exit_code == 0, result.output
    assert "back up the database" in result.output and f"Delete {len(stale)} stale annotations" in result.output
    assert world.annotation_ids() == before - stale
    assert world.children_of(stale) == 0 and world.orphans() == 0
    with world.engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT annotation_id, source, status, {SNAPSHOT} FROM "  # noqa: S608
                "annotation_reconciler.annotation_quarantine q ORDER BY annotation_id"
            )
        ).all()
    assert {r.annotation_id for r in rows} == stale and len(rows) == len(stale)
    assert all(r.source == "cli" and r.status == "purged" for r in rows)
    assert all(r.snapshot["annotation"]["id"] == r.annotation_id and r.snapshot["annotation_shape"] for r in rows)
    assert f"Deleted {len(stale)} stale annotations" in result.output


def test_answering_no_deletes_nothing(world: World) -> None:
    two_runs_stale(world)
    before = world.annotation_ids()
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run", stdin="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert world.annotation_ids() == before and world.ledger() == {}


def test_yes_skips_the_prompt(world: World) -> None:
    stale = two_runs_stale(world)
    before = world.annotation_ids()
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run", "--yes")
    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output
    assert world.annotation_ids() == before - stale


SCOPES: list[tuple[str, Callable[[World], list[str]], Callable[[World, SyntheticAnnotation], bool]]] = [
    (
        "dataset",
        lambda w: ["--dataset-id", str(w.portal.dataset_ids[1])],
        lambda w, a: a.dataset_id == w.portal.dataset_ids[1],
    ),
    (
        "run",
        lambda w: ["--run-id", str(run_ids(w)[(w.portal.dataset_ids[0], "TS_001")])],
        lambda w, a: (a.dataset_id, a.run_name) == (w.portal.dataset_ids[0], "TS_001"),
    ),
    (
        "voxel_spacing",
        lambda w: ["--voxel-spacing-id", str(voxel_spacing_id(w, w.portal.dataset_ids[0], "TS_000", 1))],
        lambda w, a: (a.dataset_id, a.run_name, a.voxel_spacing) == (w.portal.dataset_ids[0], "TS_000", 15.98),
    ),
    (
        "dataset_and_run",
        lambda w: [
            "--dataset-id",
            str(w.portal.dataset_ids[1]),
            "--run-id",
            str(run_ids(w)[(w.portal.dataset_ids[1], "TS_000")]),
        ],
        lambda w, a: (a.dataset_id, a.run_name) == (w.portal.dataset_ids[1], "TS_000"),
    ),
    (
        "dataset_and_foreign_run",  # AND of a dataset and a run of another dataset: nothing
        lambda w: [
            "--dataset-id",
            str(w.portal.dataset_ids[1]),
            "--run-id",
            str(run_ids(w)[(w.portal.dataset_ids[0], "TS_000")]),
        ],
        lambda w, a: False,
    ),
]


def voxel_spacing_id(world: World, dataset_id: int, run_name: str, index: int) -> int:
    with world.engine.connect() as conn:
        ids = conn.execute(
            text("""SELECT v.id FROM tomogram_voxel_spacing v JOIN run r ON r.id = v.run_id
                    WHERE r.dataset_id = :d AND r.name = :n ORDER BY v.voxel_spacing"""),
            {"d": dataset_id, "n": run_name},
        ).scalars()
        return list(ids)[index]


@pytest.mark.parametrize("name", [s[0] for s in SCOPES])
def test_each_scope_touches_only_its_own_annotations(world: World, name: str) -> None:
    _, args, inside = next(s for s in SCOPES if s[0] == name)
    # the first annotation of every voxel spacing is stale, everywhere in the portal
    stale_everywhere = make_stale(world, [a for a in world.portal.annotations if a.number == 0])
    expected = {world.ids[a.metadata_key] for a in world.portal.annotations if a.number == 0 and inside(world, a)}
    before = world.annotation_ids()
    result = invoke(world, *args(world), "--no-dry-run", "--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert {s["annotation_id"] for s in report["stale"]} == expected
    assert world.annotation_ids() == before - expected
    assert stale_everywhere - expected <= world.annotation_ids()  # stale rows outside the scope are left alone


@pytest.mark.parametrize("s3_prefix", ["", f"s3://{BUCKET}/", f"{BUCKET}/", f"{BUCKET}"])
def test_every_stored_path_form_maps_and_unmappable_paths_survive(
    engine: Any, s3: Any, db_url: str, s3_prefix: str
) -> None:
    # three runs: one annotation stays present (a scope where none is would be refused as a wrong prefix)
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=3, path_style="mixed"))
    paths = stored_paths(world)
    assert {p.split("/")[0] for p in paths.values()} == {"s3:", BUCKET, str(world.portal.dataset_ids[0])}
    stale = make_stale(world, world.portal.annotations[::2])  # every other: all three forms among them
    assert {paths[i].split("/")[0] for i in stale} == {"s3:", BUCKET, str(world.portal.dataset_ids[0])}
    # rows whose paths point elsewhere: their metadata is not in the bucket, but that proves nothing
    survivors = sorted(world.annotation_ids() - stale)[:3]
    unmappable = [f"s3://another-bucket/{world.portal.dataset_ids[0]}/x.json", "https://example.org/a/1.json", "TS/x"]
    with engine.begin() as conn:
        for aid, path in zip(survivors, unmappable, strict=True):
            conn.execute(text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :i"), {"p": path, "i": aid})
    result = invoke(world, "--s3-prefix", s3_prefix, "--yes", "--no-dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert {s["annotation_id"] for s in report["stale"]} == stale
    assert {u["annotation_id"] for u in report["unknown"]} == set(survivors)
    assert set(survivors) <= world.annotation_ids() and not (stale & world.annotation_ids())


def test_text_report_lists_unknown_paths(world: World) -> None:
    aid = sorted(world.annotation_ids())[0]
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = 's3://elsewhere/1/a.json' WHERE id = :i"), {"i": aid}
        )
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert result.exit_code == 0 and "Found 0 stale annotations." in result.output
    assert f"- Annotation ID {aid}: stored path 's3://elsewhere/1/a.json' does not map" in result.output
    as_json = json.loads(invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--output", "json").stdout)
    [unknown] = as_json["unknown"]  # the row as the survey read it: its path and its run
    assert (unknown["annotation_id"], unknown["s3_metadata_path"]) == (aid, "s3://elsewhere/1/a.json")
    assert unknown["run_id"] == annotation_runs(world)[aid]


def listing_pages(s3: Any, prefixes: set[str]) -> int:
    """LIST pages of 1,000 keys that the prefixes take, counted with a client of the test's own."""
    total = 0
    for prefix in prefixes:
        keys = sum(
            len(p.get("Contents", []))
            for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        total += max(1, math.ceil(keys / 1000))
    return total


def test_s3_requests_are_listing_pages_not_one_per_annotation(
    engine: Any, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=150, zarr_chunks_per_annotation=4)
    world = make_world(engine, s3, db_url, spec)
    make_stale(world, world.portal.annotations[::10])
    prefixes = {a.metadata_key.rsplit("/", 2)[0] + "/" for a in world.portal.annotations}
    pages = listing_pages(s3, prefixes)
    assert pages > len(prefixes)  # the folders are big enough to paginate
    counters: list[RequestCounter] = []

    def counted_client(**kwargs: Any) -> Any:
        client = make_s3_client(**kwargs)
        counters.append(RequestCounter.attach(client))
        return client

    monkeypatch.setattr(module, "make_s3_client", counted_client)
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]))
    assert result.exit_code == 0, result.output
    counts = counters[0].counts
    # the listing pages, and one LIST with a delimiter per level (4) of each prefix that lacks a key (issue 25)
    twin_checks = 4 * len(prefixes)
    assert set(counts) == {"ListObjectsV2"}
    assert 0 < counts["ListObjectsV2"] <= pages + twin_checks < len(world.portal.annotations)


@pytest.mark.parametrize(("failing", "suffix"), [(1, ")"), (2, "; and 1 more prefix"), (4, "; and 3 more prefixes")])
def test_s3_error_aborts_before_any_deletion(
    world: World, monkeypatch: pytest.MonkeyPatch, failing: int, suffix: str
) -> None:
    """Any prefix that cannot be listed stops the command before a deletion; the message names the first and
    counts the others (make mutate: the count's boundaries)."""
    two_runs_stale(world)
    before = world.annotation_ids()
    folders = sorted({a.metadata_key.rsplit("/", 2)[0] + "/" for a in pick(world, lambda a: a.dataset_id == 10001)})
    assert len(folders) == 4

    def failing_client(**kwargs: Any) -> Any:
        client = make_s3_client(**kwargs)
        inject_at(client, "ListObjectsV2", *folders[:failing])
        return client

    monkeypatch.setattr(module, "make_s3_client", failing_client)
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run", "--yes")
    assert result.exit_code == 1
    message = f"S3 error, nothing deleted: ListObjectsV2 s3://{BUCKET}/{folders[0]} failed (AccessDenied: "
    assert message in result.output and result.output.rstrip().endswith(suffix)
    assert "more prefix" not in result.output or failing > 1
    assert world.annotation_ids() == before


def test_a_wrong_prefix_that_finds_nothing_is_not_enough_for_yes(engine: Any, s3: Any, db_url: str) -> None:
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=2, path_style="relative"))
    before = world.annotation_ids()
    result = invoke(world, "--s3-prefix", f"s3://{BUCKET}/staging/", "--no-dry-run", "--yes")
    assert result.exit_code == 1 and "check --s3-bucket and --s3-prefix" in result.output
    assert world.annotation_ids() == before


def test_metadata_back_before_the_deletion_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stale = two_runs_stale(world)
    paths, runs = stored_paths(world), annotation_runs(world)
    back = next(a for a in world.portal.annotations if world.ids[a.metadata_key] in stale)
    original = module._confirm

    def confirm_after_restore(question: str) -> bool:
        if question.startswith("Delete"):
            world.restore(back.metadata_key)  # re-uploaded while the operator reads the prompt
        return original(question)

    monkeypatch.setattr(module, "_confirm", confirm_after_restore)
    caplog.set_level(logging.INFO, logger="annotation_reconciler.cleanup")
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run", stdin="y\n")
    assert result.exit_code == 0, result.output
    kept = world.ids[back.metadata_key]
    assert kept in world.annotation_ids() and not (stale - {kept}) & world.annotation_ids()
    assert "1 kept: their metadata is back in S3" in result.output
    # every deletion and every keep is logged, naming the annotation (and for a deletion its run and path)
    lines = [r.getMessage() for r in caplog.records if r.name == "annotation_reconciler.cleanup"]
    deleted = [f"deleted annotation {i} (run {runs[i]}): {paths[i]}" for i in sorted(stale - {kept})]
    assert sorted(line for line in lines if line.startswith("deleted")) == sorted(deleted)
    assert [line for line in lines if "kept" in line] == [f"annotation {kept} kept: its metadata is back in S3"]


def test_no_scope_warns_and_asks_first(world: World) -> None:
    two_runs_stale(world)
    before = world.annotation_ids()
    declined = invoke(world, stdin="n\n")
    assert declined.exit_code == 1 and "every annotation is checked" in declined.output
    assert "Found" not in declined.output
    accepted = invoke(world, stdin="y\n")
    assert accepted.exit_code == 0 and "Found 3 stale annotations:" in accepted.output
    assert world.annotation_ids() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--s3-bucket", "s3://x"], "is not an S3 bucket name"),
        (["--s3-bucket", BUCKET, "--s3-prefix", "s3://other-bucket/"], "names bucket 'other-bucket'"),
        (["--s3-bucket", BUCKET, "--run-id", "1", "--db-uri", "mysql://u@h/db"], "postgresql"),
        (["--run-id", "1"], "Missing option '--s3-bucket'"),
        (["--s3-bucket", BUCKET, "--run-id", "x"], "'x' is not a valid integer"),
        (["--s3-bucket", BUCKET, "--run-id", "1", "--output", "xml"], "'xml' is not one of"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)
    result = CliRunner().invoke(module.cleanup_stale_annotations, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_no_database_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)
    result = CliRunner().invoke(module.cleanup_stale_annotations, ["--s3-bucket", BUCKET, "--run-id", "1"])
    assert result.exit_code == 2 and "--db-uri" in result.output and "RECONCILER_DB_URL" in result.output


# --- what the cleanup may never delete (issue 13) -----------------------------------------------------------------


def test_a_key_spelled_differently_in_s3_is_unknown_never_deleted(engine: Any, s3: Any, db_url: str) -> None:
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=1))
    first = world.portal.annotations[0]
    folder = first.metadata_key.rsplit("/", 1)[0]
    nfc, nfd = f"{folder}/ribosome-prot\u00e9ine-1.0.json", f"{folder}/ribosome-prote\u0301ine-1.0.json"
    victim = world.ids[first.metadata_key]
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :i"),
            {"p": f"s3://{BUCKET}/{nfc}", "i": victim},
        )
    world.delete(first.metadata_key)
    world.restore(nfd)
    result = invoke(world, "--no-dry-run", "--yes", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["stale"] == [] and [u["annotation_id"] for u in report["unknown"]] == [victim]
    assert "differs only in spelling" in report["unknown"][0]["why"]
    assert victim in world.annotation_ids()


def test_the_voxel_spacing_scope_takes_legacy_rows_with_files_there_only(world: World) -> None:
    """A legacy row (NULL voxel spacing) whose files are all in voxel spacing B is not in voxel spacing A's scope."""
    first = world.portal.dataset_ids[0]
    here = voxel_spacing_id(world, first, "TS_000", 0)
    there = voxel_spacing_id(world, first, "TS_000", 1)
    in_b = next(
        a for a in world.portal.annotations if (a.dataset_id, a.run_name, a.voxel_spacing) == (first, "TS_000", 15.98)
    )
    in_a = next(
        a for a in world.portal.annotations if (a.dataset_id, a.run_name, a.voxel_spacing) == (first, "TS_000", 13.48)
    )
    ids = make_stale(world, [in_b, in_a])
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = ANY(:ids)"), {"ids": sorted(ids)}
        )
    result = invoke(world, "--voxel-spacing-id", str(here), "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert {s["annotation_id"] for s in report["stale"]} == {world.ids[in_a.metadata_key]}
    result = invoke(world, "--voxel-spacing-id", str(there), "--output", "json")
    report = json.loads(result.output[result.output.index("{") :])
    assert {s["annotation_id"] for s in report["stale"]} == {world.ids[in_b.metadata_key]}


def test_held_annotations_need_an_answer_or_approve_held(world: World) -> None:
    """A dataset whose every object is gone is suspicious (a voxel spacing emptied of metadata in a healthy
    dataset is ordinary, issue 16): --yes deletes the ordinary stale annotations, records the held ones as
    held, and --approve-held deletes them too."""
    first, second = world.portal.dataset_ids[:2]
    emptied = [
        a for a in world.portal.annotations if (a.dataset_id, a.run_name, a.voxel_spacing) == (first, "TS_001", 13.48)
    ]
    single = [
        a for a in world.portal.annotations if (a.dataset_id, a.run_name, a.voxel_spacing) == (first, "TS_000", 13.48)
    ][:1]
    gone = [a for a in world.portal.annotations if a.dataset_id == second]
    ordinary = make_stale(world, single) | make_stale(world, emptied)  # 5 of 12: within the guard at 0.5
    held = make_stale(world, gone)
    world.delete(*[k for k in world.portal.all_keys() if k.startswith(f"{second}/")])
    before = world.annotation_ids()
    result = invoke(world, "--no-dry-run", "--yes", "--max-purge-fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert "held as suspicious" in result.output and "check --s3-bucket and --s3-prefix" in result.output
    assert world.annotation_ids() == before - ordinary
    assert {i: s for i, s in world.ledger().items() if i in held} == dict.fromkeys(held, "held")
    result = invoke(world, "--no-dry-run", "--yes", "--approve-held", "--max-purge-fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert world.annotation_ids() == before - ordinary - held
    assert {world.ledger()[i] for i in held} == {"purged"}


def test_an_s3_error_at_the_recheck_deletes_nothing_and_names_the_prefix(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The survey listed every prefix; then one prefix fails at the re-check before the deletion: nothing at all
    is deleted (not even the stale annotations of the prefixes that listed), and the message names that prefix."""
    stale = two_runs_stale(world)
    failing = next(a for a in world.portal.annotations if world.ids[a.metadata_key] in stale and a.run_name == "TS_000")
    prefix = failing.metadata_key.rsplit("/", 2)[0] + "/"
    before = world.annotation_ids()
    clients: list[Any] = []

    def kept_client(**kwargs: Any) -> Any:
        clients.append(make_s3_client(**kwargs))
        return clients[-1]

    def confirm_then_fail(question: str) -> bool:
        inject_at(clients[0], "ListObjectsV2", prefix)  # after the survey, before the re-check
        return True

    monkeypatch.setattr(module, "make_s3_client", kept_client)
    monkeypatch.setattr(module, "_confirm", confirm_then_fail)
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--no-dry-run")
    assert result.exit_code == 1
    assert (
        "Error: S3 error at the re-check, nothing deleted: 1 prefix could not be listed, "
        f"e.g. s3://{BUCKET}/{prefix}: " in result.output
    )
    assert "AccessDenied" in result.output
    assert world.annotation_ids() == before and world.ledger() == {}


def test_the_mass_deletion_guard_holds_at_the_deletion_too(world: World) -> None:
    """Stale annotations beyond --max-purge-fraction of their dataset are held: --yes deletes the ordinary ones
    only and records the held ones as held; --approve-held then deletes them."""
    held = two_runs_stale(world)  # 3 of the first dataset's 12 annotations: 25 %
    second = world.portal.dataset_ids[1]
    ordinary = make_stale(world, pick(world, lambda a: a.dataset_id == second)[:1])  # 1 of 12: 8 %
    before = world.annotation_ids()
    result = invoke(world, "--no-dry-run", "--yes", "--max-purge-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert "3 held annotations were not deleted" in result.output
    assert world.annotation_ids() == before - ordinary
    assert world.ledger() == {**dict.fromkeys(held, "held"), **dict.fromkeys(ordinary, "purged")}
    with world.engine.connect() as conn:  # the ledger rows carry each annotation's run (a run scope finds them)
        runs = conn.execute(
            text("""SELECT count(*) FROM annotation_reconciler.annotation_quarantine q JOIN annotation a
                    ON a.id = q.annotation_id
                    WHERE q.run_id IS NOT DISTINCT FROM a.run_id AND q.dataset_id = :d"""),
            {"d": world.portal.dataset_ids[0]},
        ).scalar_one()
        keys = dict(
            conn.execute(
                text("SELECT annotation_id, metadata_key FROM annotation_reconciler.annotation_quarantine")
            ).all()
        )
    assert runs == len(held) == 3
    assert {i: keys[i] for i in held} == {world.ids[k]: k for k in world.portal.metadata_keys if world.ids[k] in held}
    result = invoke(world, "--no-dry-run", "--yes", "--approve-held", "--by", "erin", "--max-purge-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert world.annotation_ids() == before - ordinary - held
    with world.engine.connect() as conn:  # the audit names who approved the held ones, and only those
        approvals = dict(
            conn.execute(
                text("SELECT annotation_id, approved_by FROM annotation_reconciler.annotation_quarantine")
            ).all()
        )
    assert approvals == {**dict.fromkeys(held, "erin"), **dict.fromkeys(ordinary, None)}


@pytest.mark.parametrize("approve_held", [False, True])
def test_the_guard_judges_the_deletion_again_with_what_went_stale_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch, approve_held: bool
) -> None:
    """Found by make mutate: the deletion step's guard was never tested apart from the survey's. In the first
    dataset 2 stale of 12 pass the survey at 0.2 (the floor of 2); while the operator reads the prompt, events
    quarantine 2 more of it: 4 of 12 would go, so the deletion holds the 2 (recorded as held, each with its run
    and key). The second dataset's 3 of 12 are held by the survey; approving them (--approve-held) approves
    what the report showed held, never what the deletion step holds later."""
    first, second = world.portal.dataset_ids
    ours = pick(world, lambda x: x.dataset_id == first)
    stale = make_stale(world, [ours[0], ours[6]])  # one in each run: no folder is emptied
    meanwhile = [ours[1], ours[7]]
    held_by_survey = make_stale(world, [a for a in world.portal.annotations if a.dataset_id == second][::4])

    def confirm(question: str) -> bool:
        if question.startswith("Delete 2 stale"):
            world.delete(*(a.metadata_key for a in meanwhile))
            quarantined = world.reconciler().apply_changes(removed(*(a.metadata_key for a in meanwhile))).quarantined
            assert len(quarantined) == 2
        return not question.startswith("Delete the")  # the held ones: only with --approve-held

    monkeypatch.setattr(module, "_confirm", confirm)
    before = world.annotation_ids()
    approve = ["--approve-held"] if approve_held else []
    result = invoke(world, "--no-dry-run", "--max-purge-fraction", "0.2", *approve)
    assert result.exit_code == 0, result.output
    assert world.annotation_ids() == before - (held_by_survey if approve_held else set())
    with world.engine.connect() as conn:
        held = conn.execute(
            text("""SELECT q.annotation_id, q.run_id, q.metadata_key FROM annotation_reconciler.annotation_quarantine q
                    WHERE q.status = 'held' AND q.dataset_id = :d ORDER BY q.annotation_id"""),
            {"d": first},
        ).all()
    runs, keys = annotation_runs(world), {world.ids[a.metadata_key]: a.metadata_key for a in ours}
    assert [tuple(r) for r in held] == [(i, runs[i], keys[i]) for i in sorted(stale)]


def test_the_report_adds_up_every_batch(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deletion goes batch by batch (one annotation each here); the JSON report sums them all: kept (back in
    S3), deleted with their rows, and left in place because the current row no longer maps to a key."""
    first = world.portal.dataset_ids[0]
    a = pick(world, lambda x: x.dataset_id == first and x.run_name == "TS_000")[:1]
    b, c, d, e = pick(world, lambda x: x.dataset_id == first and x.run_name == "TS_001")[1:5]
    make_stale(world, [*a, b, c, d, e])
    gone = sorted(world.ids[x.metadata_key] for x in (b, e))  # deleted in two batches: the report sums both
    with world.engine.connect() as conn:
        rows = {
            t: conn.execute(
                text(f"SELECT count(*) FROM {t} WHERE annotation_id = ANY(:ids)"),  # noqa: S608
                {"ids": gone},
            ).scalar_one()
            for t in ("annotation_shape", "annotation_author", "annotation_method_link")
        }
        rows["annotation_file"] = conn.execute(
            text("""SELECT count(*) FROM annotation_file f JOIN annotation_shape s ON s.id = f.annotation_shape_id
                    WHERE s.annotation_id = ANY(:ids)"""),
            {"ids": gone},
        ).scalar_one()
    unmappable = f"s3://another-bucket/{d.metadata_key}"

    def confirm_after_changes(question: str) -> bool:
        world.restore(a[0].metadata_key)  # back in S3
        with world.engine.begin() as conn:  # rewritten while the operator reads the prompt
            for annotation, path in ((c, ""), (d, unmappable)):
                conn.execute(
                    text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
                    {"p": path, "id": world.ids[annotation.metadata_key]},
                )
        return True

    monkeypatch.setattr(cleanup_run, "BATCH_SIZE", 1)
    monkeypatch.setattr(module, "_confirm", confirm_after_changes)
    result = invoke(world, "--dataset-id", str(first), "--no-dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["annotations_checked"], report["prefixes_listed"]) == (12, 4)
    assert report["released"] == [world.ids[a[0].metadata_key]] and report["deleted"] == gone
    assert report["rows_deleted"] == {"annotation": 2, **{t: n for t, n in rows.items() if n}}
    left = [(u["annotation_id"], u["s3_metadata_path"], u["run_id"]) for u in report["unknown"]]
    with world.engine.connect() as conn:  # the rows as the batch read them: their run, as the survey reports it
        run = dict(conn.execute(text("SELECT id, run_id FROM annotation")).all())
    cid, did = world.ids[c.metadata_key], world.ids[d.metadata_key]
    assert left == [(cid, "", run[cid]), (did, unmappable, run[did])] and run[cid] is not None
    assert all("does not map to a key" in u["why"] for u in report["unknown"])
    assert world.annotation_ids() == set(world.ids.values()) - set(gone)


def test_the_guard_holds_the_whole_scope_not_batch_by_batch(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by make mutate (issue 13): judged again one batch at a time, each held row passed the guard that all
    of them together failed, and --yes deleted them. The survey's verdict on the whole scope stands, and a run
    that deletes batch after batch counts what its earlier batches deleted."""
    held = two_runs_stale(world)  # 3 of the first dataset's 12 annotations: 25 % > 20 %
    second = world.portal.dataset_ids[1]
    ordinary = make_stale(world, pick(world, lambda x: x.dataset_id == second)[:1])  # lets --yes go on
    monkeypatch.setattr(cleanup_run, "BATCH_SIZE", 1)
    result = invoke(world, "--no-dry-run", "--yes", "--max-purge-fraction", "0.2", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["deleted"] == sorted(ordinary) and report["held"] == sorted(held)
    assert set(held) <= world.annotation_ids() and {world.ledger()[i] for i in held} == {"held"}


def test_a_run_deleting_batch_by_batch_is_guarded_as_a_whole(world: World) -> None:
    """The deletion flow's tally: rows deleted by earlier batches of one run still count for the guard."""
    from annotation_reconciler.ledger.models import Source
    from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate
    from annotation_reconciler.rules.listings import prefixes_to_list
    from annotation_reconciler.service.deletions import Policy, delete_stale

    dataset = world.portal.dataset_ids[0]
    ours = [a for a in world.portal.annotations if a.dataset_id == dataset]
    folders = [a.metadata_key.rsplit("/", 2)[0] for a in ours]
    # one annotation of each of three folders that keep another one: no prefix listed empty
    stale = [a for a, f in zip(ours, folders, strict=True) if folders.count(f) > 1]
    stale = [
        a
        for i, a in enumerate(stale)
        if a.metadata_key.rsplit("/", 2)[0] not in {s.metadata_key.rsplit("/", 2)[0] for s in stale[:i]}
    ][:3]
    assert len(stale) == 3 and len(ours) == 12
    world.delete(*(a.metadata_key for a in stale))
    reconciler = world.reconciler()
    listings, _ = survey.list_prefixes(reconciler.context, prefixes_to_list(a.metadata_key for a in stale))
    policy = Policy(0.2)
    outcomes = []
    for a in stale:
        with world.engine.begin() as conn:
            path = conn.execute(
                text("SELECT s3_metadata_path FROM annotation WHERE id = :id"), {"id": world.ids[a.metadata_key]}
            ).scalar_one()
            candidate = Candidate(AnnotationRef(world.ids[a.metadata_key], path, dataset))
            outcomes.append(
                delete_stale(
                    conn,
                    [candidate],
                    listings,
                    reconciler.layout,
                    policy,
                    source=Source.CLI,
                    reason="r",
                    now=world.clock(),
                    neighbours=survey.neighbours(
                        reconciler.context, listings
                    ),  # every path that deletes looks for twins
                )
            )
    assert [len(o.deleted) for o in outcomes] == [1, 1, 0] and outcomes[2].held == [world.ids[stale[2].metadata_key]]
    assert policy.deleted == {dataset: 2}


def test_the_dry_run_report_marks_what_the_mass_deletion_guard_holds(world: World) -> None:
    held = two_runs_stale(world)  # 3 of the first dataset's 12 annotations: 25 %
    result = invoke(world, "--dataset-id", str(world.portal.dataset_ids[0]), "--max-purge-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert "3 of them are held (suspicious): mass-deletion guard: 3 of 12 annotations of dataset" in result.output
    assert result.output.count(" (held)\n") == len(held) == 3
