"""The shared deletion routine: children first, set-based, one transaction, audited."""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pg8000.dbapi
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from annotation_reconciler.db import make_engine
from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.portal.deletion import delete_annotations, message_of, sqlstate
from support.world import SNAPSHOT, table_counts
from support.world import count_orphans as orphans

TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")


def paths(engine: Engine, ids: list[int]) -> dict[int, str]:
    """Each annotation's current stored path: what the deletion routine is told it was judged on."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, s3_metadata_path FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"), {"ids": ids}
        ).all()
    return {r[0]: r[1] for r in rows}


def one_with_an_open_row(engine: Engine, source: str, status: str) -> int:
    """A small portal whose first annotation has an open ledger row (``quarantined`` or ``held``)."""
    victim = min(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1))).values())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO annotation_reconciler.annotation_quarantine (annotation_id, "
                "s3_metadata_path, source, reason, status,"
                " detected_at, purge_after) VALUES (:id, 'p', :source, 'r', :status, now(), now())"
            ),
            {"id": victim, "source": source, "status": status},
        )
    return victim


def test_deletes_children_and_audits(engine: Engine) -> None:
    ids = write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=2)))
    stale_ids = sorted(ids.values())[:2]
    before = table_counts(engine)
    with engine.begin() as conn:
        result = delete_annotations(conn, paths(engine, stale_ids), source=Source.CLI, reason="metadata missing")
    after = table_counts(engine)
    assert result.deleted == stale_ids
    assert result.rows_deleted == {
        "annotation_file": 6,
        "annotation_shape": 4,
        "annotation_author": 4,
        "annotation_method_link": 2,
        "annotation": 2,
    }
    assert {t: before[t] - after[t] for t in TABLES} == {
        "annotation": 2,
        "annotation_shape": 4,
        "annotation_file": 6,
        "annotation_author": 4,
        "annotation_method_link": 2,
    }
    assert orphans(engine) == 0
    with engine.connect() as conn:
        ledger = conn.execute(
            text(
                f"SELECT annotation_id, status, source, {SNAPSHOT}, dataset_id FROM "  # noqa: S608
                "annotation_reconciler.annotation_quarantine q ORDER BY 1"
            )
        ).all()
    assert [(r.annotation_id, r.status, r.source, r.dataset_id) for r in ledger] == [
        (stale_ids[0], "purged", "cli", 10001),
        (stale_ids[1], "purged", "cli", 10001),
    ]
    snap = ledger[0].snapshot
    assert snap["annotation"]["id"] == stale_ids[0]
    assert len(snap["annotation_file"]) == 3 and len(snap["annotation_author"]) == 2


def test_open_quarantine_row_becomes_purged(engine: Engine) -> None:
    victim = one_with_an_open_row(engine, "event", "quarantined")
    with engine.begin() as conn:
        delete_annotations(conn, paths(engine, [victim]), source=Source.EVENT, reason="grace period over")
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT status, source, {SNAPSHOT} FROM annotation_reconciler.annotation_quarantine q")  # noqa: S608
        ).all()
        resolved = conn.execute(
            text("SELECT resolved_at FROM annotation_reconciler.annotation_quarantine")
        ).scalar_one()
    assert [(r[0], r[1], r[2]["annotation"]["id"]) for r in rows] == [("purged", "event", victim)]
    # without a time given, the routine stamps the current time in UTC
    assert abs(resolved - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=5)


def test_statement_count_does_not_grow(engine: Engine) -> None:
    ids = sorted(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=10))).values())
    statements: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def count(*args: object) -> None:
        statements["n"] += 1

    first, rest = paths(engine, ids[:1]), paths(engine, ids[1:])
    statements.clear()
    with engine.begin() as conn:
        delete_annotations(conn, first, source=Source.CLI, reason="r")
    small = statements["n"]
    statements.clear()
    with engine.begin() as conn:
        delete_annotations(conn, rest, source=Source.CLI, reason="r")
    assert statements["n"] == small


def test_rolls_back_whole_batch_on_error(engine: Engine) -> None:
    ids = sorted(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=2))).values())
    before = table_counts(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        delete_annotations(conn, paths(engine, ids[:3]), source=Source.CLI, reason="r")
        raise RuntimeError("connection lost")
    assert table_counts(engine) == before


def test_missing_ids_are_ignored(engine: Engine) -> None:
    """An id no annotation has deletes nothing, and the ledger gets no row for it (no audit of a deletion
    that did not happen), also beside an id that does exist."""
    ids = write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1)))
    real = min(ids.values())
    before = table_counts(engine)
    with engine.begin() as conn:
        assert delete_annotations(conn, {999_999: "s3://b/k"}, source=Source.CLI, reason="r").deleted == []
    assert table_counts(engine) == before
    with engine.begin() as conn:
        outcome = delete_annotations(
            conn, {999_999: "s3://b/k", **paths(engine, [real])}, source=Source.CLI, reason="r"
        )
    assert len(outcome.deleted) == 1
    with engine.connect() as conn:
        ledger = conn.execute(
            text("SELECT annotation_id, status FROM annotation_reconciler.annotation_quarantine")
        ).all()
    assert [tuple(r) for r in ledger] == [(real, "purged")]


def test_two_calls_in_one_transaction_audit_each_with_its_own_keys(engine: Engine) -> None:
    ids = write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=2)))
    by_id = {v: k for k, v in ids.items()}
    first, second = sorted(ids.values())[:2], sorted(ids.values())[2:3]
    with engine.begin() as conn:
        one = delete_annotations(
            conn, paths(engine, first), source=Source.IMPORTER, reason="a", metadata_keys={first[0]: "k0"}
        )
        two = delete_annotations(
            conn, paths(engine, second), source=Source.CLI, reason="b", metadata_keys={second[0]: "k2"}
        )
    assert (one.deleted, two.deleted) == (first, second)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT annotation_id, source, reason, metadata_key, {SNAPSHOT} FROM "  # noqa: S608
                "annotation_reconciler.annotation_quarantine q ORDER BY 1"
            )
        ).all()
    assert [(r.annotation_id, r.source, r.reason, r.metadata_key) for r in rows] == [
        (first[0], "importer", "a", "k0"),
        (first[1], "importer", "a", None),
        (second[0], "cli", "b", "k2"),
    ]
    assert all(r.snapshot["annotation"]["s3_metadata_path"].endswith(by_id[r.annotation_id]) for r in rows)
    assert orphans(engine) == 0


def test_connections_send_without_delay(engine: Engine) -> None:
    """TCP_NODELAY: large parameter sets must not wait for the server's delayed ACK."""
    import socket

    with engine.connect() as conn:
        sock = conn.connection.dbapi_connection._usock  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_row_whose_path_changed_is_not_deleted(engine: Engine) -> None:
    """The routine deletes a row only while its stored path is the one it was judged on."""
    ids = sorted(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1))).values())
    judged = paths(engine, ids[:2])
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = s3_metadata_path || '.moved' WHERE id = :id"), {"id": ids[0]}
        )
    before = table_counts(engine)
    with engine.begin() as conn:
        result = delete_annotations(conn, judged, source=Source.CLI, reason="r")
    assert result.deleted == [ids[1]]
    assert ids[0] in paths(engine, ids[:1]) and before["annotation"] - table_counts(engine)["annotation"] == 1


@contextlib.contextmanager
def committed_meanwhile(
    engine: Engine, db_url: str, paused: str, statement: str, params: dict[str, Any]
) -> Iterator[None]:
    """While the deleting function's DELETE on ``paused`` waits (a statement trigger sleeps a second), another
    connection commits ``statement``: a concurrent writer between two of the function's statements."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION public.pause_a_moment() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(1.0); RETURN NULL; END $$"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER pause BEFORE DELETE ON public.{paused} "
                "FOR EACH STATEMENT EXECUTE FUNCTION public.pause_a_moment()"
            )
        )
    other = make_engine(db_url)
    done: list[int] = []

    def write() -> None:
        time.sleep(0.3)
        with other.begin() as side:
            done.append(side.execute(text(statement), params).rowcount)

    worker = threading.Thread(target=write)
    worker.start()
    try:
        yield
    finally:
        worker.join()
        other.dispose()
    assert done == [1], "the concurrent write did not happen"


def test_a_path_rewritten_during_the_deletion_rolls_the_batch_back(engine: Engine, db_url: str) -> None:
    """The portal's importer rewrites the path after the function picked its rows: nothing of the batch goes."""
    ids = sorted(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1))).values())
    judged = paths(engine, ids[:2])
    before = table_counts(engine)
    message = (
        rf"annotations \{{{ids[1]}\}} changed while being deleted \(stored path rewritten\); "
        "nothing of this batch is deleted"
    )
    rewrite = "UPDATE annotation SET s3_metadata_path = 'moved' WHERE id = :id"
    with (
        committed_meanwhile(engine, db_url, "annotation_file", rewrite, {"id": ids[1]}),
        pytest.raises(ConcurrentChangeError, match=message) as raised,
        engine.begin() as conn,
    ):
        delete_annotations(conn, judged, source=Source.CLI, reason="r")
    assert str(raised.value) == message.replace("\\", "")  # the server's message alone, not pg8000's fields
    after = table_counts(engine)
    assert after == before and paths(engine, ids[1:2]) == {ids[1]: "moved"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation_reconciler_audit.deleted_annotation")).scalar() == 0


def test_the_snapshot_holds_a_child_committed_during_the_deletion(engine: Engine, db_url: str) -> None:
    """A child row committed after the deletion began is either not deleted or in the snapshot (it is the
    DELETE's own RETURNING that is recorded, not an earlier read)."""
    ids = sorted(write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1))).values())
    victim = ids[0]
    late = "INSERT INTO annotation_author (annotation_id, author_list_order, name) VALUES (:id, 99, 'Late Author')"
    with committed_meanwhile(engine, db_url, "annotation_shape", late, {"id": victim}), engine.begin() as conn:
        delete_annotations(conn, paths(engine, [victim]), source=Source.CLI, reason="r")
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM annotation_author WHERE name = 'Late Author'")).scalar_one()
        snapshot = conn.execute(
            text("SELECT snapshot FROM annotation_reconciler_audit.deleted_annotation")
        ).scalar_one()
    names = [a["name"] for a in snapshot["annotation_author"]]
    assert left == 0 and "Late Author" in names
    assert orphans(engine) == 0


def test_a_held_row_is_marked_purged_and_the_snapshot_has_every_child_table(engine: Engine) -> None:
    victim = one_with_an_open_row(engine, "importer", "held")
    with engine.begin() as conn:
        delete_annotations(conn, paths(engine, [victim]), source=Source.CLI, reason="approved")
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT status, source, {SNAPSHOT} FROM annotation_reconciler.annotation_quarantine q")  # noqa: S608
        ).all()
    assert [(r.status, r.source) for r in rows] == [("purged", "importer")]
    snapshot = rows[0].snapshot
    assert {k: len(v) if isinstance(v, list) else 1 for k, v in snapshot.items()} == {
        "annotation": 1,
        "annotation_shape": 2,
        "annotation_file": 3,
        "annotation_author": 2,
        "annotation_method_link": 1,
    }


def test_the_servers_code_and_message_are_read_from_a_server_error_and_nothing_is_invented_otherwise() -> None:
    """A server error carries its fields (SQLSTATE ``C``, message ``M``); a client-side error (the connection
    lost) carries a plain text: it has no SQLSTATE, and its message is that text."""
    server = DBAPIError("SELECT 1", {}, pg8000.dbapi.ProgrammingError({"C": "40001", "M": "changed", "S": "ERROR"}))
    assert (sqlstate(server), message_of(server)) == ("40001", "changed")
    lost = DBAPIError("SELECT 1", {}, pg8000.dbapi.InterfaceError("network error"))
    assert (sqlstate(lost), message_of(lost)) == (None, "network error")
    bare = DBAPIError("SELECT 1", {}, pg8000.dbapi.InterfaceError())
    assert (sqlstate(bare), message_of(bare)) == (None, "")
