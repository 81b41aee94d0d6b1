"""A scan's data files: read on a connection of their own while the shard's listings are in flight (issue 30), and
reported missing only as the rows still are when the report is written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.rules.scope import Scope
from support.world import World


def _reports(world: World) -> dict[int, str]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT annotation_file_id, s3_path FROM annotation_reconciler.missing_annotation_file")
        ).all()
    return {r[0]: r[1] for r in rows}


def _file_row(world: World, s3_path_end: str) -> int:
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM annotation_file WHERE s3_path LIKE '%' || :end"), {"end": s3_path_end}
            ).scalar_one()
        )


def test_a_file_row_deleted_or_moved_after_the_scan_read_it_is_not_reported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = world.portal.dataset_ids[0]
    anns = [a for a in world.portal.annotations if a.dataset_id == dataset][:3]
    gone, moved, kept = (next(f for f in a.files if not f.is_prefix) for a in anns)
    world.delete(gone.key, moved.key, kept.key)  # three data files removed from S3, their rows still there
    ids = {f.key: _file_row(world, f.key) for f in (gone, moved, kept)}
    reconciler = world.reconciler()
    read = annotation_rows.files_of
    seen: list[int] = []

    def read_then_change(conn: Any, annotation_ids: Any) -> Any:
        rows = read(conn, annotation_ids)
        seen.extend(r.file_id for r in rows)
        with world.engine.begin() as conn:  # an ingest meanwhile: one row deleted, one given another path
            conn.execute(text("DELETE FROM annotation_file WHERE id = :i"), {"i": ids[gone.key]})
            conn.execute(
                text("UPDATE annotation_file SET s3_path = s3_path || '.renamed' WHERE id = :i"), {"i": ids[moved.key]}
            )
        return rows

    monkeypatch.setattr(annotation_rows, "files_of", read_then_change)
    result = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert set(ids.values()) <= set(seen)  # the scan judged the rows it read
    assert result.missing_files == 1
    assert list(_reports(world)) == [ids[kept.key]]


def test_the_scan_reads_its_data_files_once_and_reports_what_is_missing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = world.portal.dataset_ids[0]
    ann = next(a for a in world.portal.annotations if a.dataset_id == dataset)
    ndjson = next(f for f in ann.files if not f.is_prefix)
    world.delete(ndjson.key)
    reconciler = world.reconciler()
    calls: list[int] = []
    read = annotation_rows.files_of
    monkeypatch.setattr(annotation_rows, "files_of", lambda conn, ids: calls.append(len(ids)) or read(conn, ids))
    result = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert result.missing_files == 1 and calls == [sum(1 for a in world.portal.annotations if a.dataset_id == dataset)]
    assert list(_reports(world)) == [_file_row(world, ndjson.key)]
    world.restore(ndjson.key)
    assert reconciler.scan_shard(Scope(dataset_id=dataset)).restored_files == 1


def test_a_continuation_reads_only_the_data_files_of_the_rows_it_may_judge(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan resumed after a budget cut (``resume_after``) judges only the rows of the prefixes after it: it reads
    their data files, not the whole shard's again."""
    dataset = world.portal.dataset_ids[0]
    ours = sorted((a for a in world.portal.annotations if a.dataset_id == dataset), key=lambda a: a.metadata_key)
    cut = metadata_folder(ours[len(ours) // 2].metadata_key)  # the Annotations/ prefix the cut was after
    after = {world.ids[a.metadata_key] for a in ours if metadata_folder(a.metadata_key) > cut}
    assert 0 < len(after) < len(ours)
    read = annotation_rows.files_of
    asked: list[set[int]] = []
    monkeypatch.setattr(annotation_rows, "files_of", lambda conn, ids: asked.append(set(ids)) or read(conn, ids))
    world.reconciler().scan_shard(Scope(dataset_id=dataset), resume_after=cut)
    assert asked == [after]
