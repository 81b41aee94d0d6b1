"""The importer (Phase 2): upserts on natural keys, sibling cleanup scoped to the voxel spacing.

Real PostgreSQL (the ``engine`` fixture) and moto S3; expectations are derived from the synthetic portal.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from annotation_reconciler.db_import import IngestResult, ingest
from annotation_reconciler.db_import.base import StoredPaths
from annotation_reconciler.db_import.importers import AnnotationImporter
from annotation_reconciler.db_import.service import LOCK_NAMESPACE
from annotation_reconciler.errors import StorageError
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticAnnotation, SyntheticPortal, build_portal
from annotation_reconciler.local.synthetic_bucket import metadata_document
from annotation_reconciler.local.synthetic_rows import write_deposition, write_rows
from annotation_reconciler.portal.deletion import delete_annotations
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.seed import seed_bucket
from support.world import CHILD_TABLES, PORTAL_TABLES, SNAPSHOT, Clock, table_counts
from support.world import count_orphans as orphans

counts = functools.partial(table_counts, tables=PORTAL_TABLES)  # every portal table the importer writes

BUCKET = "cryoet-data-portal-public"
LAYOUT = BucketLayout(BUCKET)


def children_of(doc: dict[str, Any]) -> dict[str, int]:
    """How many child rows one annotation metadata document makes."""
    return {
        "annotation_shape": len({f["shape"] for f in doc["files"]}),
        "annotation_file": len(doc["files"]),
        "annotation_author": len(doc["authors"]),
        "annotation_method_link": len(doc["method_links"]),
    }


def expected_counts(portal: SyntheticPortal, annotations: list[SyntheticAnnotation]) -> dict[str, int]:
    """The rows an import of ``annotations`` (and their datasets, runs and voxel spacings) must leave."""
    runs = {(a.dataset_id, a.run_name) for a in annotations}
    total: Counter[str] = Counter(
        dataset=len({a.dataset_id for a in annotations}),
        run=len(runs),
        tomogram_voxel_spacing=len({(a.dataset_id, a.run_name, a.voxel_spacing) for a in annotations}),
        annotation=len(annotations),
    )
    for ann in annotations:
        total.update(children_of(metadata_document(portal, ann)))
    return {t: total[t] for t in PORTAL_TABLES}


def annotation_rows(engine: Engine, run_name: str | None = None) -> set[tuple[str, float | None, str, str]]:
    """(run, voxel spacing, ingest id, metadata path) of every annotation (of one run)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT r.name, v.voxel_spacing, a.annotation_ingest_id, a.s3_metadata_path
            FROM annotation a JOIN run r ON r.id = a.run_id
            LEFT JOIN tomogram_voxel_spacing v ON v.id = a.tomogram_voxel_spacing_id
            WHERE CAST(:run AS text) IS NULL OR r.name = :run"""),
            {"run": run_name},
        ).all()
    return {(r[0], r[1], r[2], r[3]) for r in rows}


def file_rows(engine: Engine, run_name: str | None = None) -> set[tuple[str, str, float]]:
    """(s3 path, format, voxel spacing) of every annotation file (of one run)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT f.s3_path, f.format, v.voxel_spacing
            FROM annotation_file f JOIN tomogram_voxel_spacing v ON v.id = f.tomogram_voxel_spacing_id
            JOIN run r ON r.id = v.run_id
            WHERE CAST(:run AS text) IS NULL OR r.name = :run"""),
            {"run": run_name},
        ).all()
    return {(r[0], r[1], r[2]) for r in rows}


def expected_annotations(annotations: list[SyntheticAnnotation]) -> set[tuple[str, float | None, str, str]]:
    return {(a.run_name, a.voxel_spacing, a.ingest_id, LAYOUT.s3_path(a.metadata_key)) for a in annotations}


def expected_files(annotations: list[SyntheticAnnotation]) -> set[tuple[str, str, float]]:
    return {(LAYOUT.s3_path(f.key), f.format, a.voxel_spacing) for a in annotations for f in a.files}


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    f"SELECT annotation_id, status, source, reason, {SNAPSHOT} FROM "  # noqa: S608
                    "annotation_reconciler.annotation_quarantine q"
                    " ORDER BY annotation_id"
                )
            )
        )


def run_ingest(engine: Engine, s3: Any, *, deposition: bool = True, **options: Any) -> IngestResult:
    """Ingest a dataset of the synthetic portal, its deposition row written first as the portal's own import would."""
    if deposition:
        write_deposition(engine, PortalSpec())
    options.setdefault("dataset_id", 10001)
    options.setdefault("max_purge_fraction", 0.5)
    storage = options.pop("storage", None) or S3Storage(s3, BUCKET)
    return ingest(engine, storage, LAYOUT, **options)


def in_run(portal: SyntheticPortal, run_name: str, spacing: float | None = None) -> list[SyntheticAnnotation]:
    return [a for a in portal.annotations if a.run_name == run_name and spacing in (None, a.voxel_spacing)]


def stale_of(db: SyntheticPortal, bucket: SyntheticPortal) -> list[SyntheticAnnotation]:
    present = set(bucket.metadata_keys)
    return [a for a in db.annotations if a.metadata_key not in present]


@pytest.fixture
def second_engine(db_factory: DatabaseFactory, worker_id: str) -> Iterator[Engine]:
    from annotation_reconciler.db import make_engine

    name = f"test_{worker_id}_second"
    engine = make_engine(db_factory.fresh(name))
    yield engine
    engine.dispose()
    db_factory.drop(name)


pytestmark = pytest.mark.usefixtures("no_stray_endpoint")  # in-process moto: boto3's default endpoint


# --- importing --------------------------------------------------------------------------------------------------


def test_import_into_empty_database_matches_write_rows(engine: Engine, second_engine: Engine, s3: Any) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=3, voxel_spacings_per_run=2, odd_run_names=True)
    portal = build_portal(spec)
    seed_bucket(s3, portal)
    write_rows(second_engine, portal)

    result = run_ingest(engine, s3)

    assert result.ok and result.problems == [] and result.skipped_scopes == []
    assert counts(engine) == counts(second_engine) == expected_counts(portal, portal.annotations)
    assert annotation_rows(engine) == annotation_rows(second_engine) == expected_annotations(portal.annotations)
    assert file_rows(engine) == file_rows(second_engine) == expected_files(portal.annotations)
    assert {t: result.inserted[t] for t in PORTAL_TABLES} == expected_counts(portal, portal.annotations)
    assert result.inserted["deposition"] == 0 and sum(result.removed.values()) == 0
    assert len(result.voxel_spacings) == 6 and sum(r.metadata_read for r in result.voxel_spacings) == 18
    with engine.connect() as conn:
        misbound = text("""
            SELECT count(*) FROM annotation a
            JOIN annotation_shape s ON s.annotation_id = a.id JOIN annotation_file f ON f.annotation_shape_id = s.id
            WHERE f.tomogram_voxel_spacing_id IS DISTINCT FROM a.tomogram_voxel_spacing_id""")
        bound = conn.execute(misbound).scalar_one()
        https = conn.execute(text("SELECT https_metadata_path FROM annotation ORDER BY id LIMIT 1")).scalar_one()
    assert bound == 0
    assert https == f"https://{BUCKET}.s3.amazonaws.com/{portal.annotations[0].metadata_key}"


def depositions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM deposition ORDER BY id")).scalars())


def test_a_dataset_whose_deposition_is_missing_is_refused_whole(engine: Engine, s3: Any) -> None:
    """No placeholder deposition (its NOT NULL columns would need values no one has): the dataset is refused and
    the message names what to import first."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2))
    seed_bucket(s3, portal)

    refused = run_ingest(engine, s3, deposition=False)

    assert not refused.ok and [p.scope for p in refused.problems] == ["dataset 10001"]
    assert refused.problems[0].message == (
        "deposition 301 is not in the database: import the deposition first (the portal's deposition ingestion, "
        "depositions_metadata/301/), then run this ingest again; nothing of this scope was written"
    )
    assert counts(engine) == dict.fromkeys(PORTAL_TABLES, 0) and depositions(engine) == []
    assert sum(refused.inserted.values()) == 0

    assert run_ingest(engine, s3).ok  # once the deposition is there, the same ingest goes through
    assert counts(engine) == expected_counts(portal, portal.annotations)


def test_a_voxel_spacing_naming_a_missing_deposition_is_refused_and_not_cleaned(engine: Engine, s3: Any) -> None:
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=3))
    seed_bucket(s3, portal)
    assert run_ingest(engine, s3).ok
    before = annotation_rows(engine)
    odd, stale, *_ = in_run(portal, "TS_000")
    document = metadata_document(portal, odd) | {"deposition_id": 302}
    s3.put_object(Bucket=BUCKET, Key=odd.metadata_key, Body=json.dumps(document).encode())
    s3.delete_object(Bucket=BUCKET, Key=stale.metadata_key)

    result = run_ingest(engine, s3)

    assert not result.ok and len(result.problems) == 1
    assert "deposition 302 is not in the database" in result.problems[0].message
    assert result.skipped_scopes == [odd.voxel_spacing_prefix]
    assert annotation_rows(engine) == before  # the stale annotation of the refused scope stays; nothing was written
    assert depositions(engine) == [301] and result.deleted == []


def test_reingesting_twice_leaves_identical_rows(engine: Engine, s3: Any) -> None:
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    first = run_ingest(engine, s3)
    after_first = counts(engine)
    second = run_ingest(engine, s3)

    assert counts(engine) == after_first == expected_counts(portal, portal.annotations)
    assert first.ok and second.ok
    assert sum(second.inserted.values()) == sum(second.updated.values()) == sum(second.removed.values()) == 0
    assert ledger(engine) == []


def test_ingest_over_portal_rows_updates_in_place(engine: Engine, s3: Any) -> None:
    """Rows the portal wrote are found on their natural keys and updated, not duplicated."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, path_style="mixed"))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    before = counts(engine)

    result = run_ingest(engine, s3)

    assert result.ok
    assert counts(engine) == before
    assert sum(result.inserted.values()) == sum(result.removed.values()) == 0
    assert result.updated["annotation"] == len(portal.annotations)  # paths normalised, publication filled in
    with engine.connect() as conn:
        paths: dict[int, str] = {i: p for i, p in conn.execute(text("SELECT id, s3_metadata_path FROM annotation"))}
    assert paths == {annotation_id: LAYOUT.s3_path(key) for key, annotation_id in ids.items()}


def test_one_ingestion_of_a_dataset_at_a_time(engine: Engine, s3: Any) -> None:
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    with engine.connect() as other:  # another ingestion holds the dataset
        other.execute(text("SELECT pg_advisory_lock(CAST(:n AS integer), 10001)"), {"n": LOCK_NAMESPACE})
        refused = run_ingest(engine, s3)
        other.execute(text("SELECT pg_advisory_unlock(CAST(:n AS integer), 10001)"), {"n": LOCK_NAMESPACE})
    assert not refused.ok and "another ingestion" in str(refused.problems[0])
    assert counts(engine)["annotation"] == 0
    assert run_ingest(engine, s3).ok  # the lock was released, and ours too
    assert run_ingest(engine, s3).ok


def test_children_follow_their_metadata(engine: Engine, s3: Any) -> None:
    """Shapes, files, authors and links no longer in an annotation's metadata are deleted; the rest updated."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    run_ingest(engine, s3)
    changed = portal.annotations[0]
    doc = metadata_document(portal, changed)
    doc["files"] = [f for f in doc["files"] if f["shape"] == "Point"]
    doc["authors"] = [{**doc["authors"][1], "name": "Cy Curator"}, doc["authors"][0]]
    doc["method_links"] = [{"link": "https://example.org/docs", "link_type": "documentation"}]
    s3.put_object(Bucket=BUCKET, Key=changed.metadata_key, Body=json.dumps(doc).encode())
    before = counts(engine)

    result = run_ingest(engine, s3)

    old = children_of(metadata_document(portal, changed))
    new = children_of(doc)
    assert result.ok and result.removed["annotation"] == 0
    assert {t: before[t] - counts(engine)[t] for t in CHILD_TABLES} == {t: old[t] - new[t] for t in CHILD_TABLES}
    assert result.removed["annotation_shape"] == 1 and result.removed["annotation_file"] == 2
    assert result.removed["annotation_author"] == 1 and result.removed["annotation_method_link"] == 1
    with engine.connect() as conn:
        query = text("""
            SELECT w.name, w.author_list_order FROM annotation_author w JOIN annotation a ON a.id = w.annotation_id
            WHERE a.annotation_ingest_id = :ingest ORDER BY w.author_list_order""")
        authors = conn.execute(query, {"ingest": changed.ingest_id}).all()
    assert [tuple(r) for r in authors] == [("Cy Curator", 1), ("Ada Author", 2)]  # the portal counts from 1
    assert orphans(engine) == 0


# --- stale annotations ------------------------------------------------------------------------------------------


def test_import_annotations_files_removes_stale(engine: Engine, s3: Any) -> None:
    spec = PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=3)
    in_db = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=4))
    in_bucket = build_portal(spec)
    seed_bucket(s3, in_bucket)
    ids = write_rows(engine, in_db)
    stale = [a for a in stale_of(in_db, in_bucket) if a.run_name == "TS_000"]
    assert len(stale) == 1
    victim = ids[stale[0].metadata_key]
    before = counts(engine)

    result = run_ingest(engine, s3, run_name="TS_000")

    assert result.ok and result.deleted == [victim]
    removed_children = children_of(metadata_document(in_db, stale[0]))
    assert {t: result.removed[t] for t in CHILD_TABLES} == removed_children
    assert {t: before[t] - counts(engine)[t] for t in CHILD_TABLES} == removed_children
    assert before["annotation"] - counts(engine)["annotation"] == 1
    assert orphans(engine) == 0
    # The imported run now holds exactly what S3 holds; the other run is untouched.
    assert annotation_rows(engine, "TS_000") == expected_annotations(in_run(in_bucket, "TS_000"))
    assert file_rows(engine, "TS_000") == expected_files(in_run(in_bucket, "TS_000"))
    assert annotation_rows(engine, "TS_001") == expected_annotations(in_run(in_db, "TS_001"))
    assert file_rows(engine, "TS_001") == expected_files(in_run(in_db, "TS_001"))
    [entry] = ledger(engine)
    assert (entry.annotation_id, entry.status, entry.source) == (victim, "purged", "importer")
    assert entry.reason.startswith("not found in S3 on re-ingestion of voxel spacing")
    assert entry.snapshot["annotation"]["annotation_ingest_id"] == stale[0].ingest_id
    assert len(entry.snapshot["annotation_file"]) == removed_children["annotation_file"]


def test_duplicates_whose_metadata_is_present_are_kept_and_reported(engine: Engine, s3: Any) -> None:
    """Two rows of one natural key and one metadata key: the bound (else oldest) row is updated, the other
    is left in place and reported: its metadata is in S3, so no deletion path may take it."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    original = ids[portal.annotations[0].metadata_key]
    duplicate = copy_row(engine, original)  # a second copy of one annotation

    with engine.begin() as conn:  # the copy is bound to the voxel spacing, the original is not: the copy is kept
        conn.execute(text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = :id"), {"id": original})
        conn.execute(text("UPDATE annotation SET annotation_method = 'stale copy' WHERE id = :id"), {"id": duplicate})

    result = run_ingest(engine, s3)

    assert result.ok and result.deleted == []
    [report] = result.voxel_spacings
    assert [aid for aid, _ in report.left_in_place] == [original]
    assert "metadata present" in report.left_in_place[0][1]
    with engine.connect() as conn:
        method = conn.execute(text("SELECT annotation_method FROM annotation WHERE id = :id"), {"id": duplicate})
        assert method.scalar_one() != "stale copy"  # the bound row is the one the import updated
    assert counts(engine)["annotation"] == expected_counts(portal, portal.annotations)["annotation"] + 1


def test_cleanup_is_scoped_to_the_voxel_spacing(engine: Engine, s3: Any) -> None:
    """Other voxel spacings and runs survive; legacy rows go only when their files lie in the voxel spacing."""
    shape = {"datasets": 1, "runs_per_dataset": 2, "voxel_spacings_per_run": 2}
    in_db = build_portal(PortalSpec(**shape, annotations_per_voxel_spacing=5))  # type: ignore[arg-type]
    in_bucket = build_portal(PortalSpec(**shape, annotations_per_voxel_spacing=3))  # type: ignore[arg-type]
    seed_bucket(s3, in_bucket)
    ids = write_rows(engine, in_db)
    first, second = in_db.runs[0].voxel_spacings
    here = {a.number: ids[a.metadata_key] for a in in_run(in_db, "TS_000", first)}
    there = {a.number: ids[a.metadata_key] for a in in_run(in_db, "TS_000", second)}
    with engine.begin() as conn:
        legacy = [here[101], here[104], there[103], there[104]]
        unbind = text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = ANY(:ids)")
        conn.execute(unbind, {"ids": legacy})
        no_files = text("""DELETE FROM annotation_file
                           WHERE annotation_shape_id IN (SELECT id FROM annotation_shape WHERE annotation_id = :id)""")
        conn.execute(no_files, {"id": there[104]})
    all_ids = set(ids.values())

    result = run_ingest(engine, s3, run_name="TS_000", voxel_spacing=first)

    assert result.ok and len(result.voxel_spacings) == 1
    # Stale in the imported voxel spacing: 103 (bound to it) and 104 (legacy, files in it).
    assert result.deleted == sorted([here[103], here[104]])
    with engine.connect() as conn:
        remaining = set(conn.execute(text("SELECT id FROM annotation")).scalars())
        adopted = conn.execute(
            text("SELECT tomogram_voxel_spacing_id FROM annotation WHERE id = :id"), {"id": here[101]}
        ).scalar_one()
        first_id = conn.execute(
            text("SELECT tomogram_voxel_spacing_id FROM annotation WHERE id = :id"), {"id": here[100]}
        ).scalar_one()
    assert remaining == all_ids - {here[103], here[104]}
    assert adopted == first_id  # the legacy row whose metadata is present is bound to its voxel spacing
    # The other voxel spacing's legacy rows stay and are reported: one with files there, one with none.
    reported = {row.id: row for row in result.legacy}
    assert set(reported) == {there[103], there[104]}
    assert reported[there[104]].voxel_spacing_ids == () and "no annotation files" in reported[there[104]].reason
    assert len(reported[there[103]].voxel_spacing_ids) == 1 and first_id not in reported[there[103]].voxel_spacing_ids
    with engine.connect() as conn:  # each report names the row as it is: run, ingest id, stored path
        rows = conn.execute(
            text("SELECT id, run_id, annotation_ingest_id, s3_metadata_path FROM annotation WHERE id = ANY(:ids)"),
            {"ids": list(reported)},
        ).all()
    assert {r.id: (r.run_id, r.annotation_ingest_id, r.s3_metadata_path) for r in rows} == {
        i: (row.run_id, row.annotation_ingest_id, row.s3_metadata_path) for i, row in reported.items()
    }
    assert orphans(engine) == 0


def test_annotation_importer_scope_excludes_other_voxel_spacings_and_runs(engine: Engine, s3: Any) -> None:
    """get_filters() on its own: only this voxel spacing's rows and its run's legacy rows with files in it."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=2))
    ids = write_rows(engine, portal)
    with engine.begin() as conn:
        conn.execute(text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL"))
        run_id, vs_id = conn.execute(text("SELECT run_id, id FROM tomogram_voxel_spacing ORDER BY id LIMIT 1")).one()
        importer = AnnotationImporter(
            S3Storage(s3, BUCKET),
            StoredPaths.of(LAYOUT),
            run_id=run_id,
            voxel_spacing_id=vs_id,
            voxel_spacing_prefix="unused/",
        )
        scoped = {row["id"] for row in importer.load_existing(conn)}
    first = portal.runs[0]
    assert scoped == {ids[a.metadata_key] for a in in_run(portal, first.name, first.voxel_spacings[0])}


# --- S3 errors are never emptiness ------------------------------------------------------------------------------


class FailingStorage(S3Storage):
    """S3Storage that fails on chosen keys: a GET of ``bad_key``, a LIST of ``bad_prefix`` after ``after`` keys."""

    def __init__(self, client: Any, bad_key: str = "", bad_prefix: str = "", after: int = 0) -> None:
        super().__init__(client, BUCKET)
        self.bad_key, self.bad_prefix, self.after = bad_key, bad_prefix, after

    def list_keys(self, prefix: str, *, skip_zarr_chunks: bool = True) -> Iterator[str]:
        for n, key in enumerate(super().list_keys(prefix, skip_zarr_chunks=skip_zarr_chunks)):
            if prefix == self.bad_prefix and n == self.after:
                raise StorageError("ListObjectsV2", BUCKET, prefix, RuntimeError("connection reset"))
            yield key

    def get_bytes(self, key: str) -> bytes:
        if key == self.bad_key:
            raise StorageError("GetObject", BUCKET, key, RuntimeError("read timeout"))
        return super().get_bytes(key)


def inject_client_error(s3: Any, operation: str, code: str, status: int, matches: Any) -> list[str]:
    """Make botocore answer ``operation`` with an error when ``matches(api_params)``; returns the calls failed."""
    failed: list[str] = []

    def mark(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fail"] = matches(params)

    def answer(context: dict[str, Any], **_: Any) -> Any:
        if not context.get("fail"):
            return None
        failed.append(operation)

        class Http:
            status_code, content = status, b""
            headers: dict[str, str] = {}

        return Http(), {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    s3.meta.events.register(f"before-parameter-build.s3.{operation}", mark)
    s3.meta.events.register(f"before-call.s3.{operation}", answer)
    return failed


FAILURES = ("throttled list", "list cut short", "get fails", "malformed json", "not an object")


@pytest.mark.parametrize("failure", FAILURES)
def test_s3_errors_delete_nothing(engine: Engine, s3: Any, failure: str) -> None:
    in_db = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=4))
    in_bucket = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=3))
    seed_bucket(s3, in_bucket)
    ids = write_rows(engine, in_db)
    with engine.begin() as conn:  # an author no metadata names, on every annotation
        extra = (
            "INSERT INTO annotation_author (annotation_id, author_list_order, name) "
            "SELECT id, 9, 'Old Author' FROM annotation"
        )
        conn.execute(text(extra))
    unreadable = in_bucket.annotations[1]
    prefix = unreadable.voxel_spacing_prefix + "Annotations/"
    storage = S3Storage(s3, BUCKET)
    failed: list[str] = []
    if failure == "throttled list":
        failed = inject_client_error(s3, "ListObjectsV2", "SlowDown", 503, lambda p: p.get("Prefix") == prefix)
    elif failure == "list cut short":
        storage = FailingStorage(s3, bad_prefix=prefix, after=2)
    elif failure == "get fails":
        storage = FailingStorage(s3, bad_key=unreadable.metadata_key)
    else:
        body = b'{"annotation_ingest_id": "101-' if failure == "malformed json" else b"[1, 2]"
        s3.put_object(Bucket=BUCKET, Key=unreadable.metadata_key, Body=body)
    before_ids = set(ids.values())

    result = run_ingest(engine, s3, storage=storage)

    assert not result.ok and result.skipped_scopes == [unreadable.voxel_spacing_prefix]
    assert any(unreadable.voxel_spacing_prefix in str(problem) for problem in result.problems)
    with engine.connect() as conn:
        after_ids = set(conn.execute(text("SELECT id FROM annotation")).scalars())
        old = "SELECT annotation_id, count(*) FROM annotation_author WHERE name = 'Old Author' GROUP BY 1"
        old_authors: dict[int, int] = {int(a): int(n) for a, n in conn.execute(text(old))}
    assert after_ids == before_ids  # the stale annotation too: its absence was not proven
    assert ledger(engine) == [] and result.removed["annotation"] == 0
    # Children of an annotation whose metadata was not read are never touched ...
    assert old_authors.get(ids[unreadable.metadata_key]) == 1
    # ... while those of annotations read in full follow their metadata.
    read = [ids[a.metadata_key] for a in in_bucket.annotations if a is not unreadable]
    if failure in ("get fails", "malformed json", "not an object"):
        assert not any(old_authors.get(i) for i in read) and result.removed["annotation_author"] == len(read)
    if failure == "throttled list":
        assert failed == ["ListObjectsV2"]


# --- cost ---------------------------------------------------------------------------------------------------


def test_cleanup_costs_constant_statements(
    engine: Engine, second_engine: Engine, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 stale annotation or 20: the same SQL statements for the cleanup step and for the whole import."""
    in_db = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=23))
    in_bucket = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=3))
    seed_bucket(s3, in_bucket)
    stale = stale_of(in_db, in_bucket)
    assert len(stale) == 20
    one_stale = write_rows(engine, in_db)
    with engine.begin() as conn:
        stale_ids = [one_stale[a.metadata_key] for a in stale[1:]]
        current = dict(
            conn.execute(
                text("SELECT id, s3_metadata_path FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"),
                {"ids": stale_ids},
            ).all()
        )
        delete_annotations(conn, current, source=Source.CLI, reason="setup")
    write_rows(second_engine, in_db)

    phase = ["import"]
    cleanup = AnnotationImporter.cleanup_unused_items

    def tracked_cleanup(self: AnnotationImporter, conn: Any, outcome: Any) -> None:
        phase[0] = "cleanup"
        try:
            cleanup(self, conn, outcome)
        finally:
            phase[0] = "import"

    monkeypatch.setattr(AnnotationImporter, "cleanup_unused_items", tracked_cleanup)

    def measure(target: Engine) -> tuple[Counter[str], IngestResult]:
        statements: Counter[str] = Counter()

        def count(*_: Any) -> None:
            statements[phase[0]] += 1

        event.listen(target, "before_cursor_execute", count)
        try:
            return statements, run_ingest(target, s3, max_purge_fraction=1.0)
        finally:
            event.remove(target, "before_cursor_execute", count)

    small, small_result = measure(engine)
    large, large_result = measure(second_engine)

    assert len(small_result.deleted) == 1 and len(large_result.deleted) == 20
    assert small_result.ok and large_result.ok
    assert small["cleanup"] == large["cleanup"] > 0
    assert small["import"] == large["import"]


# --- what the importer may never delete (issue 13) --------------------------------------------------------------


def annotation_ids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id FROM annotation")).scalars())


@pytest.mark.parametrize("stray", ["VoxelSpacing13.48", "VoxelSpacing13.4800", "VoxelSpacing013.480"])
def test_an_aliased_voxel_spacing_folder_stops_the_cleanup(engine: Engine, s3: Any, stray: str) -> None:
    """A stray folder that parses to the same voxel spacing must not wipe it, whichever one lists first."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    s3.put_object(Bucket=BUCKET, Key=f"10001/TS_000/Reconstructions/{stray}/Tomograms/100/t.mrc", Body=b"")
    before = annotation_ids(engine)

    for _ in range(2):  # re-running keeps them too
        result = run_ingest(engine, s3, max_purge_fraction=1.0)
        folders = " and ".join(sorted([f"{stray}/", "VoxelSpacing13.480/"]))
        told = (
            f"aliased folders: {folders} both map to voxel spacing 13.48; nothing is imported from them and sibling "
            "cleanup of this run is skipped (remove or rename the stray folder, then ingest again)"
        )
        assert not result.ok and told in [p.message for p in result.problems], [p.message for p in result.problems]
        assert result.deleted == [] and annotation_ids(engine) == before
    dry = run_ingest(engine, s3, max_purge_fraction=1.0, dry_run=True)
    assert dry.deleted == [] and set(ids.values()) == before
    assert all(r.cleanup_off == "aliased folders: nothing imported from this voxel spacing" for r in dry.voxel_spacings)
    assert sum(dry.inserted.values()) == sum(dry.updated.values()) == 0  # no row re-pointed into the stray folder


def test_a_voxel_spacing_beside_an_aliased_one_is_not_cleaned_up_either(
    engine: Engine, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``VoxelSpacing13.4800/`` beside ``VoxelSpacing13.480/``: nothing is imported from the twins, and the run's
    other voxel spacing imports but keeps its rows whose metadata is gone (the run holds aliased folders)."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    twin, other = portal.runs[0].voxel_spacings
    s3.put_object(Bucket=BUCKET, Key="10001/TS_000/Reconstructions/VoxelSpacing13.4800/Tomograms/100/t.mrc", Body=b"")
    gone = in_run(portal, "TS_000", other)[0]
    s3.delete_object(Bucket=BUCKET, Key=gone.metadata_key)

    with caplog.at_level("INFO", logger="annotation_reconciler.db_import.service"):
        result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert result.deleted == [] and ids[gone.metadata_key] in annotation_ids(engine)
    off = {r.prefix: r.cleanup_off for r in result.voxel_spacings}
    twin_prefix = in_run(portal, "TS_000", twin)[0].voxel_spacing_prefix
    assert off == {
        twin_prefix: "aliased folders: nothing imported from this voxel spacing",
        gone.voxel_spacing_prefix: "aliased folders in the run",
    }
    assert f"{twin_prefix}: aliased folders: nothing imported from this voxel spacing" in caplog.messages
    assert any(
        m.startswith("voxel spacing ")
        and m.endswith(f" ({gone.voxel_spacing_prefix}): sibling cleanup not run (aliased folders in the run)")
        for m in caplog.messages
    ), caplog.messages


def test_the_legacy_rows_of_every_run_are_reported(engine: Engine, s3: Any) -> None:
    """Importing one voxel spacing of each run leaves the rows unbound in the other one legacy: all are reported."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    first, second = portal.runs[0].voxel_spacings
    legacy = [ids[in_run(portal, run, second)[0].metadata_key] for run in ("TS_000", "TS_001")]
    with engine.begin() as conn:
        unbind = text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = ANY(:ids)")
        conn.execute(unbind, {"ids": legacy})

    result = run_ingest(engine, s3, voxel_spacing=first)

    assert result.ok and sorted(row.id for row in result.legacy) == sorted(legacy)


def test_an_aliased_run_folder_stops_the_cleanup_of_that_run_and_only_that_run(
    engine: Engine, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A stray run folder equal to a run's but for letter case (``ts_000/`` beside ``TS_000/``): either could be the
    stray one, so the run keeps its rows whose metadata is gone; the dataset's other run is cleaned up as usual."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    s3.put_object(Bucket=BUCKET, Key="10001/ts_000/Reconstructions/VoxelSpacing13.480/Tomograms/100/t.mrc", Body=b"")
    kept, gone = in_run(portal, "TS_000")[0], in_run(portal, "TS_001")[0]
    for stale in (kept, gone):
        s3.delete_object(Bucket=BUCKET, Key=stale.metadata_key)
    with caplog.at_level("INFO", logger="annotation_reconciler.db_import.service"):
        result = run_ingest(engine, s3, max_purge_fraction=1.0)
    removed = f" ({gone.voxel_spacing_prefix}): removed stale annotations {ids[gone.metadata_key]}"
    assert any(m.startswith("voxel spacing ") and m.endswith(removed) for m in caplog.messages), caplog.messages
    told = (
        "aliased folders: TS_000/ and ts_000/ both map to one run (names equal but for spelling); nothing is imported "
        "from them and sibling cleanup of this run is skipped (remove or rename the stray folder, then ingest again)"
    )
    assert not result.ok and [p.message for p in result.problems] == [told]
    assert result.deleted == [ids[gone.metadata_key]]
    assert ids[kept.metadata_key] in annotation_ids(engine)
    skipped = {r.prefix.split("/")[1]: r.cleanup_off for r in result.voxel_spacings}
    assert skipped == {"TS_000": "aliased folders: nothing imported from this voxel spacing", "TS_001": None}


def two_runs_of_two_voxel_spacings(engine: Engine, s3: Any) -> tuple[SyntheticPortal, dict[str, int]]:
    """A dataset of two runs with voxel spacings A and B each, in S3 and in the database."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    return portal, write_rows(engine, portal)


@pytest.mark.parametrize("files", [None, "not a list", {"path": "a dict"}])
def test_metadata_whose_files_are_not_a_list_is_a_problem_and_nothing_of_it_is_written(
    engine: Engine, s3: Any, files: Any
) -> None:
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    broken, *others = sorted(portal.annotations, key=lambda a: a.metadata_key)  # the first the import reads
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=broken.metadata_key)["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=broken.metadata_key, Body=json.dumps(document | {"files": files}))
    with engine.begin() as conn:  # a row the import must still correct: the ones after the broken file are read
        conn.execute(
            text("UPDATE annotation SET annotation_method = 'stale' WHERE id = :id"),
            {"id": ids[others[-1].metadata_key]},
        )
    before = counts(engine)

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert [(p.message, p.key) for p in result.problems] == [
        ("not imported: files is missing or not a list", broken.metadata_key)
    ]
    assert result.deleted == [] and counts(engine) == before
    with engine.connect() as conn:
        method = conn.execute(
            text("SELECT annotation_method FROM annotation WHERE id = :id"), {"id": ids[others[-1].metadata_key]}
        )
        assert method.scalar_one() != "stale"


def test_rows_whose_metadata_lies_outside_the_listed_prefix_are_left_in_place(engine: Engine, s3: Any) -> None:
    """A legacy row whose metadata is under voxel spacing A but with a file in B, and a row of run R2 bound
    to R1's voxel spacing (a bad backfill): importing B / R1 lists only there, which proves nothing of them."""
    portal, ids = two_runs_of_two_voxel_spacings(engine, s3)
    a_spacing, b_spacing = portal.runs[0].voxel_spacings
    legacy = ids[in_run(portal, "TS_000", a_spacing)[0].metadata_key]
    foreign = ids[in_run(portal, "TS_001", a_spacing)[0].metadata_key]
    with engine.begin() as conn:
        vs = dict(
            conn.execute(
                text("""SELECT v.voxel_spacing, v.id FROM tomogram_voxel_spacing v JOIN run r ON r.id = v.run_id
                        WHERE r.name = 'TS_000'""")
            ).all()
        )
        conn.execute(text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = :id"), {"id": legacy})
        conn.execute(  # one of the legacy row's files now points at voxel spacing B
            text("""UPDATE annotation_file SET tomogram_voxel_spacing_id = :b WHERE id = (
                      SELECT min(f.id) FROM annotation_file f JOIN annotation_shape s ON s.id = f.annotation_shape_id
                      WHERE s.annotation_id = :id)"""),
            {"b": vs[b_spacing], "id": legacy},
        )
        conn.execute(  # a row of TS_001 bound to TS_000's voxel spacing A
            text("UPDATE annotation SET tomogram_voxel_spacing_id = :a WHERE id = :id"),
            {"a": vs[a_spacing], "id": foreign},
        )
    before = annotation_ids(engine)

    first = run_ingest(engine, s3, run_name="TS_000", voxel_spacing=b_spacing, max_purge_fraction=1.0)
    second = run_ingest(engine, s3, run_name="TS_000", voxel_spacing=a_spacing, max_purge_fraction=1.0)

    assert first.deleted == [] and second.deleted == []
    assert annotation_ids(engine) == before  # nothing deleted, nothing re-inserted under a new id
    left = {aid: why for r in (*first.voxel_spacings, *second.voxel_spacings) for aid, why in r.left_in_place}
    assert "not under a completely listed prefix" in left[legacy]
    assert "not under a completely listed prefix" in left[foreign]


def add_file_elsewhere(conn: Any, shape: int, voxel_spacing_id: int) -> None:
    """A file of ``shape`` in another voxel spacing (``s3://b/elsewhere.mrc``)."""
    conn.execute(
        text("""INSERT INTO annotation_file (annotation_shape_id, tomogram_voxel_spacing_id, format, s3_path,
                                             https_path, is_visualization_default, source)
                VALUES (:shape, :vs, 'mrc', 's3://b/elsewhere.mrc', 'https://h/elsewhere.mrc', false,
                        'dataset_author')"""),
        {"shape": shape, "vs": voxel_spacing_id},
    )


def test_files_of_another_voxel_spacing_survive_the_file_cleanup(engine: Engine, s3: Any) -> None:
    """An annotation whose files span two voxel spacings: importing one never deletes the other's files."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    first, second = portal.runs[0].voxel_spacings
    annotation = ids[in_run(portal, "TS_000", first)[0].metadata_key]
    with engine.begin() as conn:
        second_id = conn.execute(
            text("SELECT id FROM tomogram_voxel_spacing WHERE voxel_spacing = :v"), {"v": second}
        ).scalar_one()
        shape = conn.execute(
            text("SELECT min(id) FROM annotation_shape WHERE annotation_id = :id"), {"id": annotation}
        ).scalar_one()
        add_file_elsewhere(conn, shape, second_id)

    result = run_ingest(engine, s3, voxel_spacing=first, max_purge_fraction=1.0)

    assert result.ok and result.removed["annotation_file"] == 0
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM annotation_file WHERE s3_path = 's3://b/elsewhere.mrc'"))
        assert kept.scalar_one() == 1


def test_the_shape_cleanup_keeps_shapes_that_still_have_files_and_shapes_outside_the_scope(
    engine: Engine, s3: Any
) -> None:
    """A shape that leaves an annotation's metadata loses this voxel spacing's files, but the shape stays while a
    file of another voxel spacing points at it; a file-less shape of an annotation the import did not read stays."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    first, second = portal.runs[0].voxel_spacings
    changed = in_run(portal, "TS_000", first)[0]
    other = ids[in_run(portal, "TS_000", second)[0].metadata_key]
    doc = metadata_document(portal, changed)
    leaving = next(f["shape"] for f in doc["files"] if f["shape"] != "Point")
    with engine.begin() as conn:
        second_id = conn.execute(
            text("SELECT id FROM tomogram_voxel_spacing WHERE voxel_spacing = :v"), {"v": second}
        ).scalar_one()
        shape = conn.execute(
            text("SELECT id FROM annotation_shape WHERE annotation_id = :id AND shape_type = :s"),
            {"id": ids[changed.metadata_key], "s": leaving},
        ).scalar_one()
        add_file_elsewhere(conn, shape, second_id)
        bare = conn.execute(
            text("INSERT INTO annotation_shape (annotation_id, shape_type) VALUES (:id, 'Mesh') RETURNING id"),
            {"id": other},
        ).scalar_one()
    doc["files"] = [f for f in doc["files"] if f["shape"] != leaving]
    s3.put_object(Bucket=BUCKET, Key=changed.metadata_key, Body=json.dumps(doc).encode())
    leaving_files = sum(f["shape"] == leaving for f in metadata_document(portal, changed)["files"])

    result = run_ingest(engine, s3, voxel_spacing=first, max_purge_fraction=1.0)

    assert result.ok and result.removed["annotation_file"] == leaving_files > 0
    assert result.removed["annotation_shape"] == 0
    with engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT s.id, count(f.id) FROM annotation_shape s LEFT JOIN annotation_file f"
                " ON f.annotation_shape_id = s.id WHERE s.id IN (:a, :b) GROUP BY s.id"
            ),
            {"a": shape, "b": bare},
        ).all()
    assert sorted((r[0], r[1]) for r in left) == sorted([(shape, 1), (bare, 0)])


def test_a_child_entry_found_twice_is_reported_with_its_scope_and_metadata_key(engine: Engine, s3: Any) -> None:
    """Found by make mutate: the child importers' problems were never read. An author, a method link and a file
    listed twice in one metadata document are imported once, each repeat reported with the voxel spacing's scope
    and the metadata key it came from."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    doubled = portal.annotations[0]
    doc = metadata_document(portal, doubled)
    for field in ("authors", "method_links", "files"):
        doc[field] = [*doc[field], doc[field][0]]
    s3.put_object(Bucket=BUCKET, Key=doubled.metadata_key, Body=json.dumps(doc).encode())

    result = run_ingest(engine, s3)

    [spacing] = result.voxel_spacings
    twice = [p for p in result.problems if "found twice" in p.message]
    assert len(twice) == 3, result.problems
    assert {(p.scope, p.key) for p in twice} == {
        (f"voxel spacing {spacing.voxel_spacing_id} ({spacing.prefix})", doubled.metadata_key)
    }
    assert counts(engine) == expected_counts(portal, portal.annotations)


def test_a_voxel_spacing_retracted_whole_in_a_healthy_dataset_is_cleaned_without_approval(
    engine: Engine, s3: Any
) -> None:
    """Found by make mutate (the importer's evidence without the dataset folder's neighbours survived): issue 16's
    rule holds for the importer too. Every metadata file of one voxel spacing is gone, its data files and the rest
    of the dataset are still in S3: an ordinary retraction, deleted at once, nothing held."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    retracted = in_run(portal, "TS_000")
    for annotation in retracted:
        s3.delete_object(Bucket=BUCKET, Key=annotation.metadata_key)

    result = run_ingest(engine, s3, run_name="TS_000", max_purge_fraction=0.5)

    [spacing] = result.voxel_spacings
    assert spacing.held == [] and result.deleted == sorted(ids[a.metadata_key] for a in retracted)


def test_importer_deletions_pass_the_mass_deletion_guard_and_approval(engine: Engine, s3: Any) -> None:
    """Beyond the fraction, the importer holds instead of deleting; approve + purge (re-checking S3) finishes."""
    in_db = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=6))
    in_bucket = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=3))
    seed_bucket(s3, in_bucket)
    ids = write_rows(engine, in_db)
    stale = {ids[a.metadata_key] for a in stale_of(in_db, in_bucket)}
    before = annotation_ids(engine)
    clock = Clock()

    result = run_ingest(engine, s3, max_purge_fraction=0.1, clock=clock)

    [report] = result.voxel_spacings
    assert result.deleted == [] and set(report.held) == stale
    assert annotation_ids(engine) == before
    rows = ledger(engine)
    assert {(r.annotation_id, r.status, r.source) for r in rows} == {(i, "held", "importer") for i in stale}
    assert all("mass-deletion guard" in r.reason for r in rows)
    with engine.connect() as conn:  # stamped by the clock it was given, as the purge that follows reads it
        stamps = set(
            conn.execute(text("SELECT detected_at FROM annotation_reconciler.annotation_quarantine")).scalars()
        )
    assert stamps == {clock.now}

    settings = Settings.from_env(
        {"RECONCILER_DB_URL": "postgresql+pg8000://u@h/db", "RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "false"}
    )
    reconciler = Reconciler(Context(engine, S3Storage(s3, BUCKET), settings, clock=clock))
    assert reconciler.approve(10001, by="test") == len(stale)
    purged = reconciler.purge()
    assert set(purged.deleted) == stale and annotation_ids(engine) == before - stale


def test_the_importer_releases_the_quarantine_of_what_it_read(engine: Engine, s3: Any) -> None:
    """Metadata moved to another folder: the Removed event quarantined the row, the importer found the new
    key and rewrote the row; its quarantine is released, and a purge later deletes nothing."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    moved = portal.annotations[0]
    new_key = moved.metadata_key.replace("/Annotations/100/", "/Annotations/150/")
    s3.copy_object(Bucket=BUCKET, Key=new_key, CopySource={"Bucket": BUCKET, "Key": moved.metadata_key})
    s3.delete_object(Bucket=BUCKET, Key=moved.metadata_key)
    clock = Clock()
    settings = Settings.from_env(
        {
            "RECONCILER_DB_URL": "postgresql+pg8000://u@h/db",
            "RECONCILER_BUCKET": BUCKET,
            "RECONCILER_DRY_RUN": "false",
            "RECONCILER_GRACE_PERIOD_HOURS": "1",
            "RECONCILER_MAX_PURGE_FRACTION": "1",
        }
    )
    reconciler = Reconciler(Context(engine, S3Storage(s3, BUCKET), settings, clock=clock))
    change = ObjectChange(BUCKET, moved.metadata_key, ChangeKind.REMOVED, "test")
    assert reconciler.apply_changes([change]).quarantined == [ids[moved.metadata_key]]

    clock.advance(minutes=5)
    run_ingest(engine, s3, max_purge_fraction=1.0, clock=clock)

    assert [(r.annotation_id, r.status) for r in ledger(engine)] == [(ids[moved.metadata_key], "released")]
    with engine.connect() as conn:
        closed = conn.execute(text("SELECT resolved_at, resolution FROM annotation_reconciler.annotation_quarantine"))
        assert tuple(closed.one()) == (clock.now, "metadata read from S3 by the importer")
    clock.advance(hours=2)
    assert reconciler.purge().deleted == []
    assert ids[moved.metadata_key] in annotation_ids(engine)


def test_rows_of_another_voxel_spacing_or_run_are_not_even_candidates(engine: Engine, s3: Any) -> None:
    """The scope query itself keeps them out (the decision would only leave them in place): a row bound to voxel
    spacing B with a file in A, and a legacy row of run R2 with a file in R1's A, are not judged by A's import."""
    portal, ids = two_runs_of_two_voxel_spacings(engine, s3)
    a_spacing, b_spacing = portal.runs[0].voxel_spacings
    bound_to_b = ids[in_run(portal, "TS_000", b_spacing)[0].metadata_key]
    other_run = ids[in_run(portal, "TS_001", a_spacing)[0].metadata_key]
    with engine.begin() as conn:
        a_id = conn.execute(
            text("""SELECT v.id FROM tomogram_voxel_spacing v JOIN run r ON r.id = v.run_id
                    WHERE r.name = 'TS_000' AND v.voxel_spacing = :v"""),
            {"v": a_spacing},
        ).scalar_one()
        conn.execute(text("UPDATE annotation SET tomogram_voxel_spacing_id = NULL WHERE id = :id"), {"id": other_run})
        for annotation_id in (bound_to_b, other_run):  # one file of each now lies in TS_000's voxel spacing A
            conn.execute(
                text("""UPDATE annotation_file SET tomogram_voxel_spacing_id = :a WHERE id = (
                          SELECT min(f.id) FROM annotation_file f
                          JOIN annotation_shape s ON s.id = f.annotation_shape_id
                          WHERE s.annotation_id = :id)"""),
                {"a": a_id, "id": annotation_id},
            )

    result = run_ingest(engine, s3, run_name="TS_000", voxel_spacing=a_spacing, max_purge_fraction=1.0)

    [report] = result.voxel_spacings
    assert report.left_in_place == [] and result.deleted == []


# --- an import with problems writes no stored path into the ambiguity (issue 25, point 1) ------------------


def stored_paths(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {i: p for i, p in conn.execute(text("SELECT id, s3_metadata_path FROM annotation"))}


def copy_key(key: str, where: str) -> str:
    """Where a stray copy of the metadata file ``key`` lands; each sorts before the original."""
    prefix, number, name = key.rsplit("/", 2)
    if where == "beside":
        return f"{prefix}/{number}/a-copy-{name}"
    return f"{prefix}/099/{name}"


@pytest.mark.parametrize("where", ["beside", "in another folder"])
def test_a_copy_of_a_metadata_file_re_points_no_row(engine: Engine, s3: Any, where: str) -> None:
    """A copy of a metadata file carries its natural key. The import must not rewrite the row's stored path to the
    copy (which sorts first): once the copy is deleted, the row would look gone while its file is in S3. Neither
    file is imported; the report names both; after the copy goes the next import is clean."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    original = portal.annotations[1]
    stray = copy_key(original.metadata_key, where)
    s3.copy_object(Bucket=BUCKET, Key=stray, CopySource={"Bucket": BUCKET, "Key": original.metadata_key})
    before = stored_paths(engine)

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert not result.ok and result.deleted == []
    [twice] = [p for p in result.problems if "found twice" in p.message]
    assert twice.key == stray and twice.message.endswith(
        f" found twice, in {stray} and {original.metadata_key}: neither is imported and no row is re-pointed to "
        "either (keep one of the files, then ingest again)"
    )
    assert stored_paths(engine) == before  # no row re-pointed, none inserted for the copy
    assert result.inserted["annotation"] == 0

    s3.delete_object(Bucket=BUCKET, Key=stray)  # the curator removes the copy: nothing is lost
    again = run_ingest(engine, s3, max_purge_fraction=1.0)
    assert again.ok and again.deleted == [] and stored_paths(engine) == before
    assert stored_paths(engine)[ids[original.metadata_key]] == LAYOUT.s3_path(original.metadata_key)


def test_a_row_whose_annotation_is_found_twice_elsewhere_is_kept_though_its_own_key_is_gone(
    engine: Engine, s3: Any
) -> None:
    """The row's stored key is gone, and two other files hold its annotation: either may be the stray copy, so its
    natural key is held back, and a row of a held key is no cleanup candidate."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    moved = portal.annotations[1]
    copies = sorted(copy_key(moved.metadata_key, where) for where in ("beside", "in another folder"))
    for copy in copies:
        s3.copy_object(Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": moved.metadata_key})
    s3.delete_object(Bucket=BUCKET, Key=moved.metadata_key)
    before = stored_paths(engine)

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert [p.key for p in result.problems if "found twice" in p.message] == [copies[0]]
    assert result.deleted == [] and stored_paths(engine) == before and ids[moved.metadata_key] in before
    assert [r.left_in_place for r in result.voxel_spacings] == [[]]  # no cleanup candidate at all


def test_a_copy_in_another_voxel_spacing_re_points_no_row(engine: Engine, s3: Any) -> None:
    """The natural-key lookup spans the run (as the portal's), but a row bound to another voxel spacing whose
    metadata lies in that voxel spacing's folder is that voxel spacing's annotation: a copy of its file in
    another folder never takes it over."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    first, second = portal.runs[0].voxel_spacings
    original = in_run(portal, "TS_000", first)[0]
    document = metadata_document(portal, original) | {"annotation_ingest_id": "100-unique-1.0"}
    s3.put_object(Bucket=BUCKET, Key=original.metadata_key, Body=json.dumps(document).encode())
    assert run_ingest(engine, s3).ok
    row = {p: i for i, p in stored_paths(engine).items()}[LAYOUT.s3_path(original.metadata_key)]
    stray = in_run(portal, "TS_000", second)[0].voxel_spacing_prefix + "Annotations/150/unique-1.0.json"
    s3.copy_object(Bucket=BUCKET, Key=stray, CopySource={"Bucket": BUCKET, "Key": original.metadata_key})

    run_ingest(engine, s3, max_purge_fraction=1.0)

    assert stored_paths(engine)[row] == LAYOUT.s3_path(original.metadata_key)
    with engine.connect() as conn:
        bound = conn.execute(
            text(
                "SELECT v.voxel_spacing FROM annotation a JOIN tomogram_voxel_spacing v"
                " ON v.id = a.tomogram_voxel_spacing_id WHERE a.id = :id"
            ),
            {"id": row},
        ).scalar_one()
    assert bound == first


def test_an_aliased_folder_holding_a_copy_re_points_no_row(engine: Engine, s3: Any) -> None:
    """``VoxelSpacing13.48/`` beside ``VoxelSpacing13.480/``, holding a copy of a metadata file: the stray folder
    lists first. Nothing is imported from either folder; the rows keep their paths; the report names both."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    write_rows(engine, portal)
    original = portal.annotations[0]
    folder = original.voxel_spacing_prefix.rstrip("/").rsplit("/", 1)[1]  # VoxelSpacing13.480
    twin = folder.rstrip("0")
    stray = original.metadata_key.replace(f"/{folder}/", f"/{twin}/")
    s3.copy_object(Bucket=BUCKET, Key=stray, CopySource={"Bucket": BUCKET, "Key": original.metadata_key})
    before = stored_paths(engine)

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert not result.ok and result.deleted == []
    assert any(f"{folder}/" in p.message and f"{twin}/" in p.message for p in result.problems)
    assert stored_paths(engine) == before
    assert sum(result.inserted.values()) == result.updated["annotation"] == 0


OLD_LAYOUT = "10001/TS_000/Annotations/"  # annotation metadata before voxel spacings had folders of their own


#: why the row keeps its stored path, for each state of its stored key ("{twin}": the listed twin)
KEPT_BECAUSE = {
    "present": "that key is still in S3",
    "unlisted": f"its folder could not be listed (S3 ListObjectsV2 failed for s3://{BUCKET}/{OLD_LAYOUT}: SlowDown",
    "case-twin": "{twin} in S3 differs from it only in spelling",
    "percent-twin": "{twin} in S3 differs from it only in spelling",
    "not-metadata": "its stored path is not an annotation metadata key of this bucket, so it cannot be shown gone",
}


@pytest.mark.parametrize("old_key_state", ["gone", *KEPT_BECAUSE])
def test_a_row_is_re_pointed_only_when_its_stored_key_is_proven_gone(
    engine: Engine, s3: Any, old_key_state: str
) -> None:
    """A legacy row stores its metadata under the old layout (``{run}/Annotations/…``); the same annotation is now
    in a voxel spacing folder. The row is re-pointed (same id, no duplicate) only when a complete listing shows the
    old key gone; while it is in S3 (or a key spelled apart from it only by case or percent-encoding), while its
    folder cannot be listed, or when the stored path is no metadata key, the row keeps its path and is reported."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    moved = portal.annotations[0]
    row = ids[moved.metadata_key]
    name = moved.metadata_key.rsplit("/", 1)[1]
    old_key = OLD_LAYOUT + moved.metadata_key.rsplit("/", 2)[1] + "/" + name
    twin = {
        "case-twin": old_key[: -len(name)] + name.upper(),
        "percent-twin": old_key[: -len(name)] + f"%{ord(name[0]):02X}" + name[1:],
    }.get(old_key_state)
    if old_key_state == "not-metadata":
        old_key = old_key.removesuffix(".json") + ".mrc"
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p, tomogram_voxel_spacing_id = NULL WHERE id = :id"),
            {"p": LAYOUT.s3_path(old_key), "id": row},
        )
    failed: list[str] = []
    if old_key_state == "present":
        s3.copy_object(Bucket=BUCKET, Key=old_key, CopySource={"Bucket": BUCKET, "Key": moved.metadata_key})
    elif twin is not None:  # a file that reads as another annotation's, spelled apart from the row's key
        s3.put_object(Bucket=BUCKET, Key=twin, Body=b"{}")
    elif old_key_state == "unlisted":
        failed = inject_client_error(s3, "ListObjectsV2", "SlowDown", 503, lambda p: p.get("Prefix") == OLD_LAYOUT)
    before = counts(engine)["annotation"]

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert counts(engine)["annotation"] == before and result.deleted == []
    if old_key_state == "gone":
        assert result.ok and stored_paths(engine)[row] == LAYOUT.s3_path(moved.metadata_key)
        return
    assert not result.ok and stored_paths(engine)[row] == LAYOUT.s3_path(old_key)
    [problem] = [p for p in result.problems if f"annotation {row} stores" in p.message]
    assert old_key in problem.message and problem.key == moved.metadata_key
    assert f"same annotation; {KEPT_BECAUSE[old_key_state].format(twin=twin)}" in problem.message, problem.message
    assert problem.message.endswith("nothing of it is written (remove the stray file, then ingest again)")
    assert failed == (["ListObjectsV2"] if old_key_state == "unlisted" else [])


def make_legacy(engine: Engine, row: int, stored_path: str) -> None:
    """Make ``row`` a legacy row (no voxel spacing, no files) that stores ``stored_path``."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM annotation_file WHERE annotation_shape_id IN"
                " (SELECT id FROM annotation_shape WHERE annotation_id = :id)"
            ),
            {"id": row},
        )
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p, tomogram_voxel_spacing_id = NULL WHERE id = :id"),
            {"p": stored_path, "id": row},
        )


def copy_row(engine: Engine, row: int) -> int:
    """A second row of ``row``'s annotation (same natural key, no shapes), as a re-ingestion without cleanup left it."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                text("""
                INSERT INTO annotation (run_id, deposition_id, tomogram_voxel_spacing_id, s3_metadata_path,
                                        https_metadata_path, annotation_ingest_id, annotation_method, method_type,
                                        object_id, object_name, deposition_date, release_date, last_modified_date)
                SELECT run_id, deposition_id, tomogram_voxel_spacing_id, s3_metadata_path,
                       https_metadata_path, annotation_ingest_id, annotation_method, method_type,
                       object_id, object_name, deposition_date, release_date, last_modified_date
                FROM annotation WHERE id = :id RETURNING id"""),
                {"id": row},
            ).scalar_one()
        )


def voxel_spacing_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {prefix: i for prefix, i in conn.execute(text("SELECT s3_prefix, id FROM tomogram_voxel_spacing"))}


@pytest.mark.parametrize("exact", ["the row storing the found key", "a legacy row before one bound elsewhere"])
def test_of_two_rows_of_one_annotation_the_import_takes_the_one_its_rank_prefers(
    engine: Engine, s3: Any, exact: str
) -> None:
    """Two rows of one annotation, neither bound to this voxel spacing as it should be. First choice: the row whose
    stored key is the found one, over a row bound here whose key is gone. Else a legacy row (no voxel spacing) over
    an older one bound to another voxel spacing by mistake. The row taken carries the found key; the other, its key
    gone from this voxel spacing's folder, is purged."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    found = portal.annotations[0]
    folder = found.voxel_spacing_prefix
    here = next(i for prefix, i in voxel_spacing_ids(engine).items() if prefix.endswith(folder))
    elsewhere = next(i for i in voxel_spacing_ids(engine).values() if i != here)
    original, copy = ids[found.metadata_key], copy_row(engine, ids[found.metadata_key])
    gone = [LAYOUT.s3_path(f"{folder}Annotations/{n}/gone-1.0.json") for n in (998, 999)]
    with engine.begin() as conn:
        move = text("UPDATE annotation SET s3_metadata_path = :p, tomogram_voxel_spacing_id = :v WHERE id = :id")
        if exact == "the row storing the found key":  # the original (legacy now) stores it; the copy is bound here
            conn.execute(move, {"p": LAYOUT.s3_path(found.metadata_key), "v": None, "id": original})
            conn.execute(move, {"p": gone[0], "v": here, "id": copy})
            taken, other, purged = original, copy, [copy]
        else:  # the original is bound to the other voxel spacing, the copy is a legacy row: both keys gone
            conn.execute(move, {"p": gone[0], "v": elsewhere, "id": original})
            conn.execute(move, {"p": gone[1], "v": None, "id": copy})
            taken, other, purged = copy, original, []

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert stored_paths(engine)[taken] == LAYOUT.s3_path(found.metadata_key) and result.deleted == purged
    assert stored_paths(engine).get(other) == (None if purged else gone[0])


@pytest.mark.parametrize("spelling", ["digits", "case"])
def test_a_legacy_row_stored_under_another_spelling_of_its_folder_is_re_pointed_not_duplicated(
    engine: Engine, s3: Any, spelling: str
) -> None:
    """A legacy row (no voxel spacing, no files) stores its key under ``VoxelSpacing13.48/`` (or ``ts_000/``) while
    S3 holds it under ``VoxelSpacing13.480/`` (``TS_000/``) only: the same folder, so the row is the file's row;
    its stored key is proven gone (its folder lists empty), so it is re-pointed, keeping its id."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    legacy = portal.annotations[0]
    folder = legacy.voxel_spacing_prefix.rstrip("/").rsplit("/", 1)[1]
    if spelling == "digits":
        old_key = legacy.metadata_key.replace(f"/{folder}/", f"/{folder.rstrip('0')}/")
    else:
        old_key = legacy.metadata_key.replace(f"/{legacy.run_name}/", f"/{legacy.run_name.lower()}/")
    assert old_key != legacy.metadata_key
    row = ids[legacy.metadata_key]
    make_legacy(engine, row, LAYOUT.s3_path(old_key))
    before = counts(engine)["annotation"]

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert result.ok, result.problems
    assert counts(engine)["annotation"] == before and result.inserted["annotation"] == 0
    assert stored_paths(engine)[row] == LAYOUT.s3_path(legacy.metadata_key)


def test_a_file_moved_within_its_voxel_spacing_re_points_its_row_from_the_listing_it_made(
    engine: Engine, s3: Any
) -> None:
    """A curator moves a metadata file to another ``Annotations/NNN/`` folder of its voxel spacing (a copy, then a
    delete). The ingest re-points the row (same id) on the strength of the voxel spacing's listing it made anyway:
    it sends no more LISTs than a re-ingest of unchanged data."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    lists: list[str] = []
    s3.meta.events.register("before-send.s3.ListObjectsV2", lambda request, **_: lists.append(request.url))
    assert run_ingest(engine, s3, max_purge_fraction=1.0).ok
    unchanged = len(lists)
    moved = portal.annotations[0]
    folder, name = moved.metadata_key.rsplit("/", 1)
    new_key = f"{folder.rsplit('/', 1)[0]}/999/{name}"
    s3.copy_object(Bucket=BUCKET, Key=new_key, CopySource={"Bucket": BUCKET, "Key": moved.metadata_key})
    s3.delete_object(Bucket=BUCKET, Key=moved.metadata_key)
    lists.clear()

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert result.ok and result.deleted == [], result.problems
    assert stored_paths(engine)[ids[moved.metadata_key]] == LAYOUT.s3_path(new_key)
    assert len(lists) == unchanged


@pytest.mark.parametrize("stored", ["another voxel spacing", "another bucket"])
def test_a_legacy_row_is_this_files_row_only_when_its_stored_key_lies_in_no_other_voxel_spacings_folder(
    engine: Engine, s3: Any, stored: str
) -> None:
    """A legacy row (no voxel spacing) with the natural key of a file here: when its stored key lies in another
    voxel spacing's folder it is that voxel spacing's row, not this file's: the file gets a row of its own and the
    legacy row is left as it is. When its stored path maps to no key of the bucket, nothing says it is elsewhere:
    it is the file's row, kept where it is since its stored key cannot be proven gone."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    legacy = portal.annotations[0]
    folder = legacy.voxel_spacing_prefix.rstrip("/").rsplit("/", 1)[1]
    if stored == "another voxel spacing":
        path = LAYOUT.s3_path(legacy.metadata_key.replace(f"/{folder}/", "/VoxelSpacing20.000/"))
    else:
        path = "s3://another-bucket/" + legacy.metadata_key
    row = ids[legacy.metadata_key]
    make_legacy(engine, row, path)
    before = counts(engine)["annotation"]

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert stored_paths(engine)[row] == path
    if stored == "another voxel spacing":
        assert result.inserted["annotation"] == 1 and counts(engine)["annotation"] == before + 1
    else:
        assert result.inserted["annotation"] == 0 and counts(engine)["annotation"] == before


def test_a_row_stored_under_a_spelling_twin_of_its_own_file_is_re_pointed_to_it(engine: Engine, s3: Any) -> None:
    """The row stores ``…/100/Ribosome-1.0.json`` while S3 holds only ``…/100/ribosome-1.0.json``, the file it is
    imported from: the one twin the listing shows is the found file itself, so the stored key is proven gone and
    the row is re-pointed (same id, nothing inserted)."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=1))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    annotation = portal.annotations[0]
    folder, name = annotation.metadata_key.rsplit("/", 1)
    old_key = f"{folder}/{name[0].upper()}{name[1:]}"
    assert old_key != annotation.metadata_key
    row = ids[annotation.metadata_key]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
            {"p": LAYOUT.s3_path(old_key), "id": row},
        )
    before = counts(engine)["annotation"]

    result = run_ingest(engine, s3, max_purge_fraction=1.0)

    assert result.ok, result.problems
    assert result.inserted["annotation"] == 0 and counts(engine)["annotation"] == before
    assert stored_paths(engine)[row] == LAYOUT.s3_path(annotation.metadata_key)
