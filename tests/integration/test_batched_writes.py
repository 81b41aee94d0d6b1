"""Writes in few statements (issue 30): a batch of events and a shard's scan write the ledger in a bounded
number of SQL statements and stamp, release and lapse exemptions as the statements one by one did. Real
PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.scope import Scope
from support.world import EVENT_TIME, World, created, make_world, removed


@pytest.mark.parametrize("size", [10, 100])
def test_a_batch_of_events_is_at_most_three_statements(engine: Engine, s3: Any, db_url: str, size: int) -> None:
    """Issue 30: a batch of any mix (metadata and data files removed, metadata and data files created again, an
    operator's exemption lapsing, a purged annotation back) maps, writes and stamps in at most 3 SQL statements, and
    does what the statements one by one did."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=10, annotations_per_voxel_spacing=4))
    reconciler = world.reconciler()
    anns = world.portal.annotations
    back, purged = anns[0].metadata_key, anns[1].metadata_key
    reconciler.apply_changes(removed(back, purged))
    with world.engine.begin() as conn:  # one row an operator released (exempt), one purged
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'released', exempt = true, "
                 "resolution = 'released by op' WHERE annotation_id = :a"),
            {"a": world.ids[back]},
        )  # fmt: skip
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'purged', resolved_at = :now "
                 "WHERE annotation_id = :a"),
            {"a": world.ids[purged], "now": world.clock.now},
        )  # fmt: skip
    gone = [a.metadata_key for a in anns[2 : 2 + size // 2]]
    chunks = [k for a in anns[2:4] for k in a.noise_keys if ".zarr/" in k][: size // 4]
    files = [f.key for f in anns[5].files if not f.is_prefix][:2]
    reconciler.apply_changes(removed(files[0]))  # a data file reported missing, created again below
    changes = removed(*gone, *chunks) + created(back, purged, files[0])
    changes += removed(*(f"10001/nowhere/Annotations/{i}/x-1.0.json" for i in range(size - len(changes))))
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    result = reconciler.apply_changes(changes)
    assert len(changes) == size and len(statements) <= 3, statements
    assert result.quarantined == sorted(world.ids[k] for k in gone)
    assert result.resurrected == [(world.ids[purged], purged)]
    assert result.missing_files == len({k.split(".zarr/")[0] for k in chunks}) and result.restored_files == 1
    with world.engine.connect() as conn:
        exempt = conn.execute(
            text("SELECT exempt FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :a"),
            {"a": world.ids[back]},
        ).scalar_one()
        stamped = conn.execute(
            text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine "
                 "WHERE status = 'quarantined' AND event_time = :t"),
            {"t": EVENT_TIME},
        ).scalar_one()  # fmt: skip
    assert exempt is False and stamped == len(gone)


def test_fresh_removals_are_two_statements_and_a_row_open_before_still_takes_the_newer_stamp(world: World) -> None:
    """Issue 30: a row the batch opens starts with its removal's stamp (no third statement); a row that was open
    already is stamped by the third, with the newer of its stamp and the removal's, as before."""
    reconciler = world.reconciler()
    first, second = world.portal.metadata_keys[:2]
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    assert reconciler.apply_changes(removed(first)).quarantined == [world.ids[first]]
    assert len(statements) == 2
    later = EVENT_TIME + datetime.timedelta(minutes=5)
    statements.clear()
    assert reconciler.apply_changes(removed(first, at=later) + removed(second)).quarantined == [world.ids[second]]
    assert len(statements) == 3
    with world.engine.connect() as conn:
        stamps = dict(
            conn.execute(
                text("SELECT annotation_id, event_time FROM annotation_reconciler.annotation_quarantine")
            ).all()
        )
    assert stamps == {world.ids[first]: later, world.ids[second]: EVENT_TIME}
    # a Created between the two removals releases nothing: the row has seen the later removal
    between = EVENT_TIME + datetime.timedelta(minutes=1)
    assert reconciler.apply_changes(created(first, at=between)).released == []


def test_a_scan_writes_in_a_few_statements_and_stamps_releases_and_lapses_as_one_by_one(world: World) -> None:
    """Issue 30: a shard's scan reads the newest ledger row of every annotation it may write about once; a row it
    opens starts with its listing's stamp, a row open before takes the newer stamp, and the release and the lapse
    of exemptions are one statement, made only when an annotation with its key present has a ledger row."""
    reconciler = world.reconciler()
    dataset = world.portal.dataset_ids[0]
    keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == dataset]
    lone, back, exempt = keys[0], keys[1], keys[2]
    world.delete(lone)
    world.clock.advance(minutes=5)
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    first = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert first.quarantined == [world.ids[lone]] and first.released == []
    assert len(statements) <= 7, statements
    assert not any("SET status = 'released'" in s or "SET exempt = false" in s for s in statements)

    def stamps() -> dict[int, tuple[str, datetime.datetime | None, bool]]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT annotation_id, status, event_time, exempt FROM annotation_reconciler.annotation_quarantine"
                )
            ).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    assert stamps() == {world.ids[lone]: ("quarantined", world.clock.now, False)}
    reconciler.apply_changes(removed(back, exempt))  # removals at EVENT_TIME, their keys still in S3
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'released', exempt = true, "
                 "resolution = 'released by op' WHERE annotation_id = :a"),
            {"a": world.ids[exempt]},
        )  # fmt: skip
    world.clock.advance(minutes=5)
    statements.clear()
    second = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert second.released == [world.ids[back]] and second.quarantined == []
    assert sum("SET status = 'released'" in s for s in statements) == 1  # with the lapse, in one statement
    assert stamps() == {
        world.ids[lone]: ("quarantined", world.clock.now, False),  # open before: the newer listing's stamp
        world.ids[back]: ("released", world.clock.now, False),
        world.ids[exempt]: ("released", EVENT_TIME, False),  # its exemption lapsed: the listing is newer
    }
