"""The portal's own annotation-import tests, run against our importer.

``tests/data/portal_annotation_import.json`` transcribes, as data, the six test cases of
``apiv2/db_import/tests/test_db_annotation_import.py`` of cryoet-data-portal-backend (commit 87d1ca4a):
the rows its ``populate_db.py`` writes first, the S3 fixture tree ``test_infra/test_files/30001/`` (uploaded
to ``s3://test-public-bucket/`` as ``test_infra/seed_moto.sh`` does), and the values it expects. Each case
below runs our ``ingest`` on the real PostgreSQL and moto and makes the portal's checks (``verify_model``:
every expected column equal, every other column that is not an id NULL), except where our rules differ
on purpose; each such place names its difference:

* ``STALE_PATH_IS_NOT_A_KEY``: the portal's stale annotation stores ``s3_metadata_path = 'foo'``, which maps
  to no key of the bucket, so nothing can prove it absent: ours leaves it (and its children) in place and
  reports it, where the portal's sibling cleanup deletes it.
* ``CHILDREN_WITH_THE_ANNOTATION``: the portal imports authors and method links only under
  ``--import-annotation-authors`` / ``--import-annotation-method-links``; ours imports an annotation's authors
  and links with it, always (a half-imported annotation would be served by the API).
* ``DATASET_ROW``: our importer writes a dataset's key columns (title, description, dates, prefixes,
  deposition); the rest of the row (organism, sample, publications, key photos, file size) is the portal's
  dataset importer's, which ours does not replace: those keep what is stored.

The last tests go beyond the portal's module: one per field this transcription fixed (each failed before),
and a re-ingestion over the rows the portal's importer writes for this fixture, which must change nothing.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, select

from annotation_reconciler.db_import import IngestResult, ingest
from annotation_reconciler.portal.models import PORTAL_TABLES
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.storage import S3Storage
from support.seed import put_objects

PORTAL = json.loads((Path(__file__).parents[1] / "data" / "portal_annotation_import.json").read_text())
BUCKET: str = PORTAL["bucket"]
EXPECTED: dict[str, Any] = PORTAL["expected"]
RUN1_ID, ANNOTATION_ID, STALE_ANNOTATION_ID, VOXEL_SPACING_ID = 401, 602, 904, 502
METADATA_KEY = "30001/RUN1/Reconstructions/VoxelSpacing12.300/Annotations/100/foo-1.0.json"
FILES = "30001/RUN1/Reconstructions/VoxelSpacing12.300/Annotations/"
ALIGNMENT_PATH = f"s3://{BUCKET}/30001/RUN1/Alignments/100/alignment_metadata.json"

STALE_PATH_IS_NOT_A_KEY = "a stored path that maps to no key ('foo') is never deleted"
CHILDREN_WITH_THE_ANNOTATION = "our importer imports an annotation's authors and method links with it"
DATASET_ROW = "our importer writes the dataset's key columns only; the rest is the portal's dataset importer's"
DATASET_COLUMNS = (
    "id",
    "title",
    "description",
    "deposition_date",
    "release_date",
    "last_modified_date",
    "s3_prefix",
    "https_prefix",
    "deposition_id",
)


pytestmark = pytest.mark.usefixtures("no_stray_endpoint")  # in-process moto: boto3's default endpoint


# --- the fixture, as the portal's tests set it up -----------------------------------------------------------


def body_of(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj["json"]).encode() if "json" in obj else b"\0" * int(obj["size"])


@pytest.fixture
def bucket(s3: Any) -> Any:
    """``test_infra/test_files/`` synced to ``s3://test-public-bucket/`` (only dataset 30001 matters here)."""
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    put_objects(s3, BUCKET, ((key, body_of(obj)) for key, obj in PORTAL["objects"].items()))
    return s3


def put_metadata(s3: Any, document: Mapping[str, Any]) -> None:
    s3.put_object(Bucket=BUCKET, Key=METADATA_KEY, Body=json.dumps(document).encode())


def metadata() -> dict[str, Any]:
    return copy.deepcopy(PORTAL["objects"][METADATA_KEY]["json"])


_REFLECTED: dict[str, Table] = {}


def tables(engine: Engine) -> dict[str, Table]:
    """The portal's tables as the database defines them, reflected once for the module (0.25 s a time, 44 times in
    all): every test's database is a copy of the same template, and no test here changes its schema."""
    if not _REFLECTED:
        meta = MetaData()
        _REFLECTED.update({name: Table(name, meta, autoload_with=engine) for name in (*PORTAL_TABLES, "alignment")})
    return _REFLECTED


def column_value(column: str, value: Any) -> Any:
    """A JSON value of the data file as the column holds it (dates are days at 00:00 UTC)."""
    if value == "$today":
        value = datetime.date.today().isoformat()
    if "date" in column and isinstance(value, str):
        day = datetime.date.fromisoformat(value)
        return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return value


def write(engine: Engine, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ``rows`` ({table, values, as}) in order; returns the ids of the named ones."""
    known = tables(engine)
    named: dict[str, int] = {}
    with engine.begin() as conn:
        for row in rows:
            values = {
                column: named[value["$ref"]] if isinstance(value, dict) else column_value(column, value)
                for column, value in row["values"].items()
            }
            table = known[row["table"]]
            new_id = conn.execute(insert(table).values(values).returning(table.c.id)).scalar_one()
            if "as" in row:
                named[row["as"]] = int(new_id)
    return named


def populate(engine: Engine, *steps: str) -> None:
    """The populate_* functions of populate_db.py a case calls, in order."""
    for step in steps:
        write(engine, PORTAL["populate"][step])


def run_ingest(engine: Engine, s3: Any) -> IngestResult:
    """``load_func(s3_bucket='test-public-bucket', https_prefix='https://foo.com', s3_prefix='30001', …)``."""
    storage = S3Storage(s3, BUCKET)
    return ingest(engine, storage, BucketLayout(BUCKET), PORTAL["dataset_id"], https_prefix=PORTAL["https_prefix"])


# --- reading back, and the portal's verify_model ------------------------------------------------------------


def rows(engine: Engine, table: str, **where: Any) -> list[dict[str, Any]]:
    t = tables(engine)[table]
    query = select(t).where(*(t.c[column] == value for column, value in where.items())).order_by(t.c.id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def verify_row(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The portal's ``verify_model``: expected columns equal, every other column whose name has no "id" NULL."""
    for column, value in expected.items():
        assert actual[column] == column_value(column, value), f"{column}: {actual[column]!r} != {value!r}"
    for column in actual.keys() - expected.keys():
        if "id" not in column:
            assert actual[column] is None, f"{column}: {actual[column]!r} is not NULL"


def verify_dataset(engine: Engine) -> None:
    [dataset] = rows(engine, "dataset", id=PORTAL["dataset_id"])
    # DATASET_ROW: the columns our importer writes are the portal's values; the others keep what is stored.
    for column in DATASET_COLUMNS:
        assert dataset[column] == column_value(column, EXPECTED["dataset"][column]), column


def run1_annotations(engine: Engine) -> list[dict[str, Any]]:
    return sorted(rows(engine, "annotation", run_id=RUN1_ID), key=lambda r: r["s3_metadata_path"])


def files_of(engine: Engine, annotation_id: int) -> list[dict[str, Any]]:
    """The annotation's files, by shape type then format (the portal's order)."""
    found = []
    for shape in sorted(rows(engine, "annotation_shape", annotation_id=annotation_id), key=lambda s: s["shape_type"]):
        found += sorted(rows(engine, "annotation_file", annotation_shape_id=shape["id"]), key=lambda f: f["format"])
    return found


def children(engine: Engine, annotation_id: int) -> dict[str, list[dict[str, Any]]]:
    shapes = rows(engine, "annotation_shape", annotation_id=annotation_id)
    return {
        "annotation": rows(engine, "annotation", id=annotation_id),
        "annotation_shape": shapes,
        "annotation_file": [f for s in shapes for f in rows(engine, "annotation_file", annotation_shape_id=s["id"])],
        "annotation_author": rows(engine, "annotation_author", annotation_id=annotation_id),
        "annotation_method_link": rows(engine, "annotation_method_link", annotation_id=annotation_id),
    }


def verify_annotations_and_files(engine: Engine, annotations: list[dict[str, Any]]) -> None:
    expected_annotations: Iterator[dict[str, Any]] = iter(EXPECTED["annotations"])
    expected_files: Iterator[dict[str, Any]] = iter(EXPECTED["annotation_files"])
    files = []
    for annotation in annotations:
        verify_row(annotation, next(expected_annotations))
        for file in files_of(engine, annotation["id"]):
            files.append(file)
            verify_row(file, next(expected_files))
        # CHILDREN_WITH_THE_ANNOTATION: the portal asserts no authors here (imported without
        # --import-annotation-authors); ours imports the metadata's authors with the annotation.
        authors = sorted(rows(engine, "annotation_author", annotation_id=annotation["id"]), key=order)
        assert [a["name"] for a in authors] == [a["name"] for a in EXPECTED["annotation_authors"]]
    assert len(files) == len(EXPECTED["annotation_files"])


def order(author: Mapping[str, Any]) -> int:
    return int(author["author_list_order"])


# --- the six cases of test_db_annotation_import.py ----------------------------------------------------------


def test_import_annotations(engine: Engine, bucket: Any) -> None:
    """Addition and update of annotations and annotation files."""
    populate(engine, "annotation_files")

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    verify_annotations_and_files(engine, run1_annotations(engine))


def test_import_annotations_files_removes_stale(engine: Engine, bucket: Any) -> None:
    populate(engine, "annotation_files", "stale_annotation_files")
    stale_before = children(engine, STALE_ANNOTATION_ID)

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    # STALE_PATH_IS_NOT_A_KEY: the portal deletes annotation 904 ('foo'); ours leaves it and its children as
    # they were, and says why. The portal's checks then hold for every other annotation of the run.
    assert children(engine, STALE_ANNOTATION_ID) == stale_before
    [report] = [r for r in result.voxel_spacings if r.voxel_spacing_id == VOXEL_SPACING_ID]
    assert [(i, "does not map to a key" in why) for i, why in report.left_in_place] == [(STALE_ANNOTATION_ID, True)]
    others = [a for a in run1_annotations(engine) if a["id"] != STALE_ANNOTATION_ID]
    verify_annotations_and_files(engine, others)


def verify_authors(engine: Engine) -> None:
    for annotation in run1_annotations(engine):
        if annotation["id"] == STALE_ANNOTATION_ID:
            continue
        authors = sorted(rows(engine, "annotation_author", annotation_id=annotation["id"]), key=order)
        assert len(authors) == len(EXPECTED["annotation_authors"])
        for author, expected in zip(authors, EXPECTED["annotation_authors"], strict=True):
            verify_row(author, expected)


def test_import_annotation_authors(engine: Engine, bucket: Any) -> None:
    """Update of existing annotation authors, addition of new authors (the stale one is removed)."""
    populate(engine, "annotation_authors")

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    verify_authors(engine)
    assert [a["id"] for a in run1_annotations(engine)] == [ANNOTATION_ID]


def test_import_annotation_authors_removes_stale(engine: Engine, bucket: Any) -> None:
    populate(engine, "annotation_authors", "stale_annotation_authors")
    stale_before = children(engine, STALE_ANNOTATION_ID)

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    verify_authors(engine)  # the portal skips annotation 904 here too
    assert children(engine, STALE_ANNOTATION_ID) == stale_before  # STALE_PATH_IS_NOT_A_KEY


def verify_method_links(engine: Engine, by_id: bool) -> None:
    for annotation in run1_annotations(engine):
        if annotation["id"] == STALE_ANNOTATION_ID:
            continue
        links = rows(engine, "annotation_method_link", annotation_id=annotation["id"])
        links.sort(key=(lambda link: link["id"]) if by_id else (lambda link: link["link"]), reverse=True)
        assert len(links) == len(EXPECTED["annotation_method_links"])
        for link, expected in zip(links, EXPECTED["annotation_method_links"], strict=True):
            verify_row(link, expected)


def test_import_annotation_method_links(engine: Engine, bucket: Any) -> None:
    """Update of existing method links, addition of new ones (the stale one is removed)."""
    populate(engine, "annotation_method_links")

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    verify_method_links(engine, by_id=False)


def test_import_annotation_method_links_removes_stale(engine: Engine, bucket: Any) -> None:
    populate(engine, "annotation_method_links", "stale_annotation_method_links")
    stale_before = children(engine, STALE_ANNOTATION_ID)

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    verify_dataset(engine)
    verify_method_links(engine, by_id=True)
    assert children(engine, STALE_ANNOTATION_ID) == stale_before  # STALE_PATH_IS_NOT_A_KEY


# --- one test per field the transcription fixed (each failed before) ---------------------------------------


def only_file(engine: Engine, shape: str) -> dict[str, Any]:
    [annotation] = run1_annotations(engine)
    [found] = [
        f
        for s in rows(engine, "annotation_shape", annotation_id=annotation["id"])
        if s["shape_type"] == shape
        for f in rows(engine, "annotation_file", annotation_shape_id=s["id"])
    ]
    return found


@pytest.mark.parametrize(
    ("deposition_id", "portal_standard", "source"),
    [(300, False, "dataset_author"), (301, True, "portal_standard"), (301, False, "community")],
)
def test_file_source_is_derived_from_the_depositions(
    engine: Engine, bucket: Any, deposition_id: int, portal_standard: bool, source: str
) -> None:
    """``dataset_author`` only when the annotation's deposition is the dataset's (300); else ``portal_standard``
    for a file its metadata marks so; else ``community`` (it was ``dataset_author`` for every file)."""
    populate(engine, "annotations")
    annotation = tables(engine)["annotation"]
    with engine.begin() as conn:  # the existing row keeps its natural key
        conn.execute(annotation.update().where(annotation.c.id == ANNOTATION_ID).values(deposition_id=deposition_id))
    document = metadata() | {"deposition_id": deposition_id}
    document["files"] = [f | {"is_portal_standard": portal_standard} for f in document["files"]]
    put_metadata(bucket, document)

    assert run_ingest(engine, bucket).ok

    assert only_file(engine, "Point")["source"] == source


def test_file_size_is_the_total_size_under_the_file_path(engine: Engine, bucket: Any) -> None:
    """The sum of the objects under the path (a zarr's chunks all count), 0 when there are none (it was NULL)."""
    populate(engine, "annotations")
    bucket.put_object(Bucket=BUCKET, Key=f"{FILES}100-foo-1.0_point.ndjson", Body=b"x" * 123)
    for name, size in ((".zattrs", 10), ("0/.zarray", 20), ("0/0/0/0", 300)):
        bucket.put_object(Bucket=BUCKET, Key=f"{FILES}100-foo-1.0_segmask.zarr/{name}", Body=b"z" * size)

    assert run_ingest(engine, bucket).ok

    sizes = {f["s3_path"].rsplit("/", 1)[-1]: f["file_size"] for f in files_of(engine, ANNOTATION_ID)}
    assert sizes["100-foo-1.0_point.ndjson"] == 123
    assert sizes["100-foo-1.0_segmask.zarr"] == 330
    assert sizes["100-foo-1.0_segmask.mrc"] == 0


def fail_listing(s3: Any, matches: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Make every ListObjectsV2 whose parameters ``matches`` answer SlowDown; returns the prefixes failed."""
    failed: list[str] = []

    def mark(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fail"] = params.get("Prefix") if matches(params) else None

    def answer(context: dict[str, Any], **_: Any) -> Any:
        if not context.get("fail"):
            return None
        failed.append(context["fail"])

        class Http:
            status_code, content = 503, b""
            headers: dict[str, str] = {}

        error = {"Error": {"Code": "SlowDown", "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
        return Http(), error

    s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", mark)
    s3.meta.events.register("before-call.s3.ListObjectsV2", answer)
    return failed


ELSEWHERE = "30001/RUN1/Reconstructions/VoxelSpacing12.300/Elsewhere/100-foo-1.0_point.ndjson"


@pytest.mark.parametrize("where", ["under Annotations/", "elsewhere"])
def test_a_file_size_s3_could_not_tell_keeps_the_stored_one(
    engine: Engine, bucket: Any, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 error is never "0 bytes": the stored size stays, the scope reports it and removes nothing. Files
    under the voxel spacing's Annotations/ are sized by one listing of it (not the metadata listing, which skips
    zarr chunks and sends MaxKeys), a file elsewhere by a LIST of its own path."""
    populate(engine, "annotations")
    key = f"{FILES}100-foo-1.0_point.ndjson" if where == "under Annotations/" else ELSEWHERE
    document = metadata()
    document["files"] = [f | {"path": key} if f["shape"] == "Point" else f for f in document["files"]]
    put_metadata(bucket, document)
    bucket.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 123)
    assert run_ingest(engine, bucket).ok
    assert only_file(engine, "Point")["file_size"] == 123
    bucket.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 7)
    if where == "elsewhere":
        failed = fail_listing(bucket, lambda params: params.get("Prefix") == key)
    else:
        failed = fail_listing(bucket, lambda params: params.get("Prefix") == FILES and "MaxKeys" not in params)

    with caplog.at_level("INFO", logger="annotation_reconciler.db_import.service"):
        result = run_ingest(engine, bucket)

    assert failed and not result.ok
    skipped = [m for m in caplog.messages if m.endswith(": cleanup skipped, S3 was not read completely")]
    assert len(skipped) == 1 and skipped[0].startswith("voxel spacing "), caplog.messages
    unknown = {p.key: p.message for p in result.problems if "file size unknown" in p.message}  # the files S3 hid
    assert unknown[key].startswith("file size unknown, the stored one kept: S3 ListObjectsV2")
    assert only_file(engine, "Point")["file_size"] == 123
    assert result.skipped_scopes != [] and result.deleted == []


def test_authors_count_from_one_and_their_statuses_default_to_false(engine: Engine, bucket: Any) -> None:
    """``author_list_order`` 1, 2, 3 (it was 0, 1, 2); a status the metadata leaves out is false (it was NULL)."""
    populate(engine, "annotations")
    document = metadata()
    document["authors"] = [{"name": "No Status"}, *document["authors"][1:]]
    put_metadata(bucket, document)

    assert run_ingest(engine, bucket).ok

    authors = sorted(rows(engine, "annotation_author", annotation_id=ANNOTATION_ID), key=order)
    assert [(a["name"], a["author_list_order"]) for a in authors] == [
        ("No Status", 1),
        ("J Carpenter", 2),
        ("John Doe", 3),
    ]
    assert (authors[0]["primary_author_status"], authors[0]["corresponding_author_status"]) == (False, False)


def test_alignment_id_is_the_alignment_the_metadata_names(engine: Engine, bucket: Any) -> None:
    """``alignment_metadata_path`` (``test-public-bucket/30001/RUN1/Alignments/100/…``) names the run's
    alignment stored at ``s3://test-public-bucket/30001/RUN1/Alignments/100/…`` (it was always NULL)."""
    populate(engine, "annotations")
    named = write(
        engine,
        [
            {
                "table": "alignment",
                "as": "other_run",
                "values": {"run_id": 402, "s3_alignment_metadata": ALIGNMENT_PATH},
            },
            {
                "table": "alignment",
                "as": "this_run",
                "values": {"run_id": RUN1_ID, "s3_alignment_metadata": ALIGNMENT_PATH},
            },
        ],
    )

    assert run_ingest(engine, bucket).ok

    assert {f["alignment_id"] for f in files_of(engine, ANNOTATION_ID)} == {named["this_run"]}


def test_an_alignment_the_run_lacks_is_null(engine: Engine, bucket: Any) -> None:
    populate(engine, "annotations")
    write(engine, [{"table": "alignment", "values": {"run_id": RUN1_ID, "s3_alignment_metadata": "s3://x/other.json"}}])

    assert run_ingest(engine, bucket).ok

    assert {f["alignment_id"] for f in files_of(engine, ANNOTATION_ID)} == {None}


def test_a_legacy_row_without_voxel_spacing_or_files_is_updated_not_duplicated(engine: Engine, bucket: Any) -> None:
    """Natural key (401, 301, '100-foo-1.0'), no voxel spacing, no files: found across the run and updated in
    place, bound to its voxel spacing (a second row was inserted beside it)."""
    populate(engine, "annotations")

    result = run_ingest(engine, bucket)

    assert result.ok and result.inserted["annotation"] == 0 and result.updated["annotation"] == 1
    [annotation] = run1_annotations(engine)
    assert (annotation["id"], annotation["tomogram_voxel_spacing_id"]) == (ANNOTATION_ID, VOXEL_SPACING_ID)
    verify_row(annotation, EXPECTED["annotations"][0])


# --- re-ingesting what the portal's importer wrote -----------------------------------------------------------


def portal_written_rows() -> list[dict[str, Any]]:
    """Every row the portal's importer (``--import-everything`` for these tables) leaves for this fixture: the
    expected values of its tests, and the datasets, runs and voxel spacings its other importers write."""
    https, s3 = PORTAL["https_prefix"], f"s3://{BUCKET}"
    dataset = dict(EXPECTED["dataset"])
    result: list[dict[str, Any]] = [r for r in PORTAL["populate"]["annotations"] if r["table"] == "deposition"]
    result.append({"table": "dataset", "values": dataset})
    runs = {"RUN1": RUN1_ID, "RUN2": 403, "RUN3": 404, "RUN4": 402}
    for name, run_id in runs.items():
        prefix = f"30001/{name}/"
        values = {"id": run_id, "dataset_id": 30001, "name": name}
        result.append(
            {"table": "run", "values": values | {"s3_prefix": s3 + "/" + prefix, "https_prefix": https + "/" + prefix}}
        )
    for run_id, folder, spacing, vs_id in (
        (RUN1_ID, "RUN1/Reconstructions/VoxelSpacing12.300/", 12.3, VOXEL_SPACING_ID),
        (RUN1_ID, "RUN1/Reconstructions/VoxelSpacing9.876/", 9.876, 503),
        (403, "RUN2/Reconstructions/VoxelSpacing3.456/", 3.456, 504),
    ):
        prefix = f"30001/{folder}"
        values = {"id": vs_id, "run_id": run_id, "voxel_spacing": spacing}
        result.append(
            {
                "table": "tomogram_voxel_spacing",
                "values": values | {"s3_prefix": s3 + "/" + prefix, "https_prefix": https + "/" + prefix},
            }
        )
    alignment = {"id": 801, "run_id": RUN1_ID, "s3_alignment_metadata": ALIGNMENT_PATH}
    result.append({"table": "alignment", "values": alignment})
    annotation = EXPECTED["annotations"][0] | {"tomogram_voxel_spacing_id": VOXEL_SPACING_ID}
    result.append({"table": "annotation", "values": annotation})
    shapes = {f["shape"]: f["format"] for f in metadata()["files"]}
    for shape in sorted(shapes):
        result.append(
            {"table": "annotation_shape", "as": shape, "values": {"annotation_id": ANNOTATION_ID, "shape_type": shape}}
        )
    by_path = {f"{s3}/{f['path']}": f["shape"] for f in metadata()["files"]}
    for file in EXPECTED["annotation_files"]:
        values = file | {"annotation_shape_id": {"$ref": by_path[file["s3_path"]]}, "alignment_id": 801}
        result.append({"table": "annotation_file", "values": values})
    result += [{"table": "annotation_author", "values": a} for a in EXPECTED["annotation_authors"]]
    result += [{"table": "annotation_method_link", "values": link} for link in EXPECTED["annotation_method_links"]]
    return result


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {name: rows(engine, name) for name in (*PORTAL_TABLES, "alignment")}


def test_reingesting_what_the_portal_wrote_changes_no_row(engine: Engine, bucket: Any) -> None:
    """No duplicate, no rewritten value, nothing removed: every row as the portal's importer left it."""
    write(engine, portal_written_rows())
    before = snapshot(engine)
    assert len(before["annotation_file"]) == 7 and len(before["annotation_author"]) == 3

    result = run_ingest(engine, bucket)

    assert result.ok, result.problems
    assert sum(result.inserted.values()) == sum(result.updated.values()) == sum(result.removed.values()) == 0
    assert snapshot(engine) == before
