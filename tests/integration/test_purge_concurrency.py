"""The purge beside other work: two purges at once delete each row once, an event during the purge's S3
listing waits on no lock, and a batch that fails or rolls back ends its claims so the next purge retries at
once. Real PostgreSQL, moto S3."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.ledger import purge_claims
from support.scenarios import quarantined_past_grace
from support.world import World, created, removed


def test_two_purges_at_once_delete_each_row_once(world: World) -> None:
    keys = world.portal.metadata_keys[:6]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        reconciler = world.reconciler()
        reconciler.context = dataclasses.replace(reconciler.context, purge_batch_size=2)
        barrier.wait()
        results.append(reconciler.purge())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    purged = [i for r in results for i in r.deleted]
    assert sorted(purged) == sorted(world.ids[k] for k in keys)
    with world.engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT annotation_id, count(*) FROM annotation_reconciler.annotation_quarantine WHERE "
                "status = 'purged' GROUP BY 1"
            )
        ).all()
    assert {c for _, c in counts} == {1} and len(counts) == 6


def test_purge_holds_no_lock_while_it_asks_s3(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the purge lists S3, an ObjectCreated event releases the row at once (no lock wait), and the
    purge then leaves the released row alone."""
    reconciler, key, victim = quarantined_past_grace(world)
    listed = reconciler.storage.list_many
    seen: list[Any] = []

    def list_and_release(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.restore(key)
        with world.engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '1s'"))
            conn.commit()
        seen.append(world.reconciler().apply_changes(created(key)).released)
        return answer

    monkeypatch.setattr(reconciler.storage, "list_many", list_and_release)
    result = reconciler.purge()
    assert seen == [[victim]] and result.deleted == [] and victim in world.annotation_ids()


@pytest.mark.parametrize("failure", [ConcurrentChangeError("a row changed under the purge"), RuntimeError("boom")])
def test_a_failed_purge_batch_ends_its_claims_so_the_next_purge_retries_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    """A batch that rolls back (a concurrent change) or fails drops its lease: the rows are not stuck for the
    lease's 20 minutes, and nothing was deleted."""
    reconciler, _key, victim = quarantined_past_grace(world)

    def fails(*args: Any, **kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(purge_claims, "lock_claims", fails)
    if isinstance(failure, ConcurrentChangeError):
        caplog.set_level(logging.WARNING, logger="annotation_reconciler.service.purge")
        assert reconciler.purge().errors == [str(failure)]
        assert caplog.messages == [f"purge batch rolled back: {failure}"]
    else:  # issue 27: the row fails alone too, so it is marked with its error and the purge goes on
        assert reconciler.purge().failed == [victim]
    with world.engine.connect() as conn:
        leases = (
            conn.execute(text("SELECT claimed_until FROM annotation_reconciler.annotation_quarantine")).scalars().all()
        )
    assert leases == [None] and victim in world.annotation_ids()
    monkeypatch.undo()
    assert world.reconciler().purge().deleted == [victim]  # same clock: no lease to wait out


def test_a_purge_that_cannot_even_mark_a_failed_row_raises_and_ends_its_claims(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database gone mid-purge: the row cannot be settled nor marked; the error is raised (ScheduleErrors)
    and the lease is dropped as far as it can be."""
    reconciler, _key, victim = quarantined_past_grace(world)

    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(purge_claims, "lock_claims", fails)
    monkeypatch.setattr(purge_claims, "mark_failed", fails)
    with pytest.raises(RuntimeError, match="boom"):
        reconciler.purge()
    with world.engine.connect() as conn:
        leases = (
            conn.execute(text("SELECT claimed_until FROM annotation_reconciler.annotation_quarantine")).scalars().all()
        )
    assert leases == [None] and victim in world.annotation_ids()


def _refuse_to_delete(world: World, annotation_id: int) -> None:
    """A portal trigger the reconciler does not know that refuses to delete one annotation."""
    with world.engine.begin() as conn:
        conn.execute(
            text(
                f"""CREATE FUNCTION public.keep_annotation() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF OLD.id = {int(annotation_id)} THEN RAISE EXCEPTION 'annotation % is kept', OLD.id;
                    END IF; RETURN OLD; END $$"""
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER keep BEFORE DELETE ON annotation FOR EACH ROW EXECUTE FUNCTION public.keep_annotation()"
            )
        )


def _purge_state(world: World, annotation_id: int) -> tuple[Any, ...]:
    with world.engine.connect() as conn:
        return tuple(
            conn.execute(
                text("""SELECT status, purge_error, purge_failures, claimed_until
                        FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :a"""),
                {"a": annotation_id},
            ).one()
        )


def test_one_row_the_portal_will_not_let_go_fails_alone_and_keeps_its_error_until_it_is_settled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 in the fast suite: the batch fails on one row, each row is then settled alone on the batch's
    evidence: the others are purged, the one is marked with its error and waits. A later batch that rolls back
    ends its lease but keeps that error; once the row is settled, the error goes."""
    keys = [k for k in world.portal.metadata_keys if "/TS_000/" in k][:1] + [
        k for k in world.portal.metadata_keys if "/TS_001/" in k
    ][:2]
    world.delete(*keys)
    reconciler = world.reconciler(purge_batch_size=10, RECONCILER_MAX_PURGE_FRACTION="1")
    reconciler.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    stuck = world.ids[keys[0]]
    _refuse_to_delete(world, stuck)

    result = reconciler.purge()
    assert result.failed == [stuck] and sorted(result.deleted) == sorted(world.ids[k] for k in keys[1:])
    status, error, failures, lease = _purge_state(world, stuck)
    assert (status, failures, lease) == ("quarantined", 1, None)
    assert error.startswith("ProgrammingError: ") and f"annotation {stuck} is kept" in error

    world.clock.advance(hours=1)
    monkeypatch.setattr(purge_claims, "lock_claims", _raises(ConcurrentChangeError("a row changed under the purge")))
    assert reconciler.purge().errors == ["a row changed under the purge"]
    assert _purge_state(world, stuck) == ("quarantined", error, 1, None)  # the lease ended, the error kept

    monkeypatch.undo()
    with world.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER keep ON annotation"))
    assert reconciler.purge().deleted == [stuck]
    assert _purge_state(world, stuck) == ("purged", None, 0, None)


def _raises(error: Exception) -> Any:
    def fails(*args: Any, **kwargs: Any) -> None:
        raise error

    return fails


def test_the_purge_raises_its_own_error_when_not_even_the_lease_can_be_ended(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row cannot be settled, marked, nor its lease ended (the database is gone): the error raised is the
    settling's, not the best-effort ending's; the lease then runs out by itself."""
    reconciler, _key, victim = quarantined_past_grace(world)
    monkeypatch.setattr(purge_claims, "lock_claims", _raises(RuntimeError("boom")))
    monkeypatch.setattr(purge_claims, "mark_failed", _raises(RuntimeError("cannot mark")))
    monkeypatch.setattr(purge_claims, "end_claims", _raises(RuntimeError("cannot end")))
    with pytest.raises(RuntimeError, match="cannot mark"):
        reconciler.purge()
    assert victim in world.annotation_ids()
