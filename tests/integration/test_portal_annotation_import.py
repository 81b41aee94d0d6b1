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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, select

from annotation_reconciler.db_import import IngestResult, ingest
from annotation_reconciler.paths import BucketLayout
from annotation_reconciler.portal.models import PORTAL_TABLES
from annotation_reconciler.storage import S3Storage

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


@pytest.fixture(autouse=True)
def no_stray_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process moto needs boto3's default endpoint; a test that exported AWS_ENDPOINT_URL must not leak here."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


# --- the fixture, as the portal's tests set it up -----------------------------------------------------------


def body_of(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj["json"]).encode() if "json" in obj else b"\0" * int(obj["size"])


@pytest.fixture
def bucket(s3: Any) -> Any:
    """``test_infra/test_files/`` synced to ``s3://test-public-bucket/`` (only dataset 30001 matters here)."""
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    for key, obj in PORTAL["objects"].items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body_of(obj))
    return s3


def put_metadata(s3: Any, document: Mapping[str, Any]) -> None:
    s3.put_object(Bucket=BUCKET, Key=METADATA_KEY, Body=json.dumps(document).encode())


def metadata() -> dict[str, Any]:
    return copy.deepcopy(PORTAL["objects"][METADATA_KEY]["json"])


def tables(engine: Engine) -> dict[str, Table]:
    meta = MetaData()
    return {name: Table(name, meta, autoload_with=engine) for name in (*PORTAL_TABLES, "alignment")}


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
