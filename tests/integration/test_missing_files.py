"""Missing data files: a removed data file is recorded and never deleted (nor its annotation); events and scans
record it once and close the report only for the removed keys they list again. Real PostgreSQL, moto S3."""

from __future__ import annotations

from sqlalchemy import text

from annotation_reconciler.rules.scope import Scope
from support.scenarios import reconciler
from support.world import BUCKET, World, created, removed


def test_data_file_removal_is_recorded_never_deleted(world: World) -> None:
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    chunk = ann.noise_keys[-1]
    assert chunk.startswith(zarr.key + "/")
    ndjson = ann.files[0].key
    world.delete(chunk, ndjson)
    reconciler = world.reconciler()
    result = reconciler.apply_changes(removed(chunk, ndjson))
    assert result.missing_files == 2 and result.quarantined == []
    world.clock.advance(hours=2)
    assert reconciler.purge().claimed == 0
    assert world.ids[ann.metadata_key] in world.annotation_ids()
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            ).scalar()
            == 2
        )
    world.restore(ndjson)
    assert reconciler.apply_changes(created(ndjson)).restored_files == 1


def test_a_scan_records_a_missing_data_file_and_its_return(world: World) -> None:
    ann = world.portal.annotations[0]
    plain = next(f for f in ann.files if not f.is_prefix)
    zarr = next(f for f in ann.files if f.is_prefix)
    world.delete(plain.key, *[k for k in ann.noise_keys if k.startswith(zarr.key + "/")])
    r = reconciler(world)
    scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    assert (scan.missing_files, scan.quarantined) == (2, [])
    with world.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT annotation_id, removed_key FROM annotation_reconciler.missing_annotation_file "
                "WHERE resolved_at IS NULL ORDER BY 2"
            )
        ).all()
    assert rows == sorted(
        [(world.ids[ann.metadata_key], plain.key), (world.ids[ann.metadata_key], zarr.key)], key=lambda x: x[1]
    )
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).missing_files == 0  # recorded once
    world.s3.put_object(Bucket=BUCKET, Key=plain.key, Body=b"{}")
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).restored_files == 1


def test_a_scan_closes_a_report_only_for_the_removed_keys_it_lists_again(world: World) -> None:
    """Issue 18's rule for missing-file reports holds at the scan too: a zarr that lists again closes the
    report naming the zarr, but not the report of a chunk the listing does not show."""
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    chunk = next(k for k in ann.noise_keys if k.startswith(zarr.key + "/"))
    other = next(a for a in world.portal.annotations[1:] if a.dataset_id == ann.dataset_id)
    other_zarr = next(f for f in other.files if f.is_prefix)
    r = reconciler(world)
    world.delete(chunk)
    assert r.apply_changes(removed(chunk)).missing_files == 1  # one chunk of a zarr gone: its report
    world.delete(*[k for k in other.noise_keys if k.startswith(other_zarr.key + "/")])
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).missing_files == 1  # the other zarr, all gone
    world.restore(*[k for k in other.noise_keys if k.startswith(other_zarr.key + "/")][:1])
    scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    with world.engine.connect() as conn:
        still_open = (
            conn.execute(
                text("SELECT removed_key FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            )
            .scalars()
            .all()
        )
    assert scan.restored_files == 1 and still_open == [chunk]


def test_a_scan_closes_the_report_of_a_key_inside_a_zarr_it_lists_again(world: World) -> None:
    """A removed key inside a zarr that the listing does show (its ``.zattrs``, listed before the chunks are
    skipped) closes its report when a scan lists it again, its Created event lost."""
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    attrs = next(k for k in ann.noise_keys if k == zarr.key + "/.zattrs")
    r = reconciler(world)
    world.delete(attrs)
    assert r.apply_changes(removed(attrs)).missing_files == 1
    world.restore(attrs)  # its Created event is lost
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).restored_files == 1
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            ).scalar()
            == 0
        )


def test_the_purge_closes_the_missing_file_reports_of_the_annotations_it_deletes_and_no_others(world: World) -> None:
    """An annotation's open missing-file report has nothing left to report once the purge deletes the
    annotation: it is closed with the purge's clock; another annotation's report stays open."""
    gone, kept = world.portal.annotations[0], world.portal.annotations[1]
    world.delete(gone.files[0].key, kept.files[0].key)
    reconciler = world.reconciler()
    assert reconciler.apply_changes(removed(gone.files[0].key, kept.files[0].key)).missing_files == 2
    world.delete(gone.metadata_key)
    reconciler.apply_changes(removed(gone.metadata_key))
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [world.ids[gone.metadata_key]]
    with world.engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT annotation_id, resolved_at FROM annotation_reconciler.missing_annotation_file
                    ORDER BY annotation_id""")
        ).all()
    assert [(r[0], r[1]) for r in rows] == [
        (world.ids[gone.metadata_key], world.clock.now),
        (world.ids[kept.metadata_key], None),
    ]
