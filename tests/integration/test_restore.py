"""Undo (issue 16): ``restore`` puts every portal table back as it was before a purge, through the CLI too,
and refuses, restoring nothing, when the id, the natural key or a child's id is taken since. Real
PostgreSQL, moto S3."""

from __future__ import annotations

import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler.cli.main import cli
from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.restore import RestoreError, RestoreScope, restore
from support.scenarios import ledger_rows, reconciler, removed_by_event
from support.world import World, dump, removed


def purged_one(world: World, index: int) -> int:
    """The annotation of ``world.portal.metadata_keys[index]``: its metadata deleted, quarantined and purged."""
    _, aid, r = removed_by_event(world, index, RECONCILER_MAX_PURGE_FRACTION="0.5")
    world.clock.advance(hours=2)
    assert r.purge().deleted == [aid]
    return aid


def purged_two(world: World) -> tuple[list[str], Reconciler]:
    """The metadata of the first two annotations of dataset 10001 deleted, quarantined and purged: their keys and
    the reconciler that purged them."""
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    r = reconciler(world, RECONCILER_MAX_PURGE_FRACTION="0.5")
    r.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    assert len(r.purge().deleted) == 2
    return list(keys), r


def test_restore_puts_every_portal_table_back_as_it_was(world: World) -> None:
    before = dump(world.engine)
    keys, r = purged_two(world)
    purged = dump(world.engine)
    assert purged != before
    with world.engine.begin() as conn:
        dry = restore(conn, RestoreScope(dataset_id=10001), by="dave", now=world.clock(), dry_run=True)
    assert dry.annotations == sorted(world.ids[k] for k in keys) and dump(world.engine) == purged
    assert dry.rows == {
        "annotation": 2,
        "annotation_shape": 4,
        "annotation_file": 6,
        "annotation_author": 4,
        "annotation_method_link": 2,
    }
    runner = CliRunner()
    out = runner.invoke(
        cli, ["restore", "--db-url", world.db_url, "--dataset-id", "10001", "--no-dry-run", "--by", "dave"]
    )
    assert out.exit_code == 0, out.output
    assert "restored 2 annotations" in out.output
    assert dump(world.engine) == before
    rows = {row.annotation_id: row for row in ledger_rows(world.engine)}
    assert {(rows[world.ids[k]].status, rows[world.ids[k]].resolved_by) for k in keys} == {("restored", "dave")}
    # the sequences moved past the restored ids: a new row gets a fresh id
    with world.engine.begin() as conn:
        new_id = conn.execute(
            text("""INSERT INTO annotation_author (annotation_id, author_list_order, name)
                    VALUES (:a, 9, 'x') RETURNING id"""),
            {"a": world.ids[keys[0]]},
        ).scalar_one()
    assert new_id > max(r[1] for r in before["annotation_author"])
    # restored rows are exempt: the scan leaves them alone while their metadata is still missing
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    again = runner.invoke(cli, ["restore", "--db-url", world.db_url, "--annotation-id", str(world.ids[keys[0]])])
    assert again.exit_code == 1 and "no purged annotation matches" in again.output


def test_restore_refuses_when_the_id_or_the_natural_key_exists_now(world: World) -> None:
    aid = purged_one(world, 3)
    # the importer brought the annotation back under a new id meanwhile
    with world.engine.begin() as conn:
        conn.execute(
            text("""INSERT INTO annotation SELECT (jsonb_populate_record(NULL::annotation,
                      jsonb_set(snapshot -> 'annotation', '{id}', to_jsonb(999999)))).*
                    FROM annotation_reconciler_audit.deleted_annotation WHERE annotation_id = :a"""),
            {"a": aid},
        )
    before = dump(world.engine)
    with pytest.raises(RestoreError, match="has its natural key") as info, world.engine.begin() as conn:
        restore(conn, RestoreScope(annotation_id=aid), by="erin", now=world.clock(), dry_run=False)
    assert str(info.value) == (
        f"refusing to restore annotation {aid}: annotation {aid}: annotation 999999 has its natural key (run, "
        "deposition, annotation_ingest_id) now. Nothing was restored; remove or re-key those rows, or narrow the scope "
        "(--annotation-id)"
    )
    assert dump(world.engine) == before
    runner = CliRunner()
    out = runner.invoke(cli, ["restore", "--db-url", world.db_url])
    assert out.exit_code == 2 and "--annotation-id" in out.output
    out = runner.invoke(cli, ["restore", "--db-url", world.db_url, "--dataset-id", "1", "--since", "yesterday"])
    assert out.exit_code == 2 and "ISO 8601" in out.output


def test_restore_refuses_a_child_id_taken_since(world: World) -> None:
    aid = purged_one(world, 4)
    with world.engine.begin() as conn:
        author = conn.execute(
            text(
                "SELECT CAST(snapshot -> 'annotation_author' -> 0 ->> 'id' AS integer) FROM "
                "annotation_reconciler_audit.deleted_annotation"
            )
        ).scalar_one()
        other = world.ids[world.portal.metadata_keys[5]]
        conn.execute(
            text("INSERT INTO annotation_author (id, annotation_id, author_list_order, name) VALUES (:i, :a, 5, 'y')"),
            {"i": author, "a": other},
        )
    with pytest.raises(RestoreError, match=f"annotation_author id {author} exists"), world.engine.begin() as conn:
        restore(conn, RestoreScope(annotation_id=aid), by="erin", now=world.clock(), dry_run=False)


def test_restore_is_a_dry_run_unless_told_otherwise(world: World) -> None:
    aid = purged_one(world, 3)
    purged = dump(world.engine)
    with world.engine.begin() as conn:
        result = restore(conn, RestoreScope(annotation_id=aid), by="dave", now=world.clock())
    assert result.dry_run and result.annotations == [aid] and dump(world.engine) == purged


def test_restore_refuses_while_the_ledger_holds_a_planted_object_and_says_so(world: World) -> None:
    """The owner's session must never run what a role planted in the reconciler's schemas: restore refuses,
    naming itself and the object, and restores nothing."""
    aid = purged_one(world, 3)
    with world.engine.begin() as conn:
        conn.execute(text("CREATE TABLE annotation_reconciler.planted (id int)"))
    purged = dump(world.engine)
    with pytest.raises(LedgerSchemaError) as refused, world.engine.begin() as conn:
        restore(conn, RestoreScope(annotation_id=aid), by="dave", now=world.clock(), dry_run=False)
    assert str(refused.value).startswith("refusing to restore: the reconciler's schemas")
    assert "annotation_reconciler.planted" in str(refused.value) and dump(world.engine) == purged


def test_a_restore_scope_restores_its_dataset_and_period_only(world: World) -> None:
    """Annotations purged in two datasets, at two times: a dataset's scope restores that dataset's, a period's scope
    those purged since its start, both together their intersection."""
    first = world.portal.metadata_keys[0]
    other = next(k for k in world.portal.metadata_keys if k.split("/")[0] != first.split("/")[0])
    later = world.portal.metadata_keys[3]
    r = reconciler(world, RECONCILER_MAX_PURGE_FRACTION="0.5")
    world.delete(first, other)
    r.apply_changes(removed(first, other))
    world.clock.advance(hours=2)
    assert sorted(r.purge().deleted) == sorted(world.ids[k] for k in (first, other))
    since = world.clock() + datetime.timedelta(hours=1)
    world.delete(later)
    r.apply_changes(removed(later, at=world.clock()))
    world.clock.advance(hours=3)
    assert r.purge().deleted == [world.ids[later]]
    dataset = int(first.split("/")[0])

    def would_restore(scope: RestoreScope) -> list[int]:
        with world.engine.begin() as conn:
            result = restore(conn, scope, by="dave", now=world.clock(), dry_run=True)
        assert result.dry_run is True
        return result.annotations

    assert would_restore(RestoreScope(dataset_id=dataset)) == sorted(world.ids[k] for k in (first, later))
    assert would_restore(RestoreScope(since=since)) == [world.ids[later]]
    assert would_restore(RestoreScope(dataset_id=dataset, since=since)) == [world.ids[later]]
    with pytest.raises(RestoreError, match=f"no purged annotation matches dataset {other.split('/')[0]}, purged since"):
        would_restore(RestoreScope(dataset_id=int(other.split("/")[0]), since=since))


def test_a_refusal_names_the_first_ten_problems_and_counts_the_rest(world: World) -> None:
    """Everything of two purged annotations is back under the same ids (restored, then its audit reopened): each
    of their 18 rows is a problem; the refusal shows ten and counts eight more."""
    keys, _ = purged_two(world)
    with world.engine.begin() as conn:
        done = restore(conn, RestoreScope(dataset_id=10001), by="dave", now=world.clock(), dry_run=False)
        assert done.dry_run is False and sum(done.rows.values()) == 18
        conn.execute(text("UPDATE annotation_reconciler_audit.deleted_annotation SET restored_at = NULL"))
    with pytest.raises(RestoreError) as refused, world.engine.begin() as conn:
        restore(conn, RestoreScope(dataset_id=10001), by="dave", now=world.clock(), dry_run=False)
    message = str(refused.value)
    assert message.startswith("refusing to restore dataset 10001: annotation id ")
    shown, rest = message.split(". Nothing was restored", 1)
    problems = shown.removeprefix("refusing to restore dataset 10001: ").split("; ")
    first, second = sorted(world.ids[k] for k in keys)
    assert problems[:2] == [f"annotation id {first} exists", f"annotation id {second} exists"]
    assert len(problems) == 11 and problems[-1] == "and 8 more"
    assert rest == "; remove or re-key those rows, or narrow the scope (--annotation-id)"
