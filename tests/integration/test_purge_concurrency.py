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
