"""Model-based test: random interleavings of S3 changes, event deliveries, scans, purges, clock moves and
dry-run toggles, on the real PostgreSQL and moto. After every step:

- no annotation was deleted while its metadata was in S3;
- no child row is orphaned;
- every purged annotation has exactly one ``purged`` ledger row, with a snapshot.

At the end, a scan and purges past the grace period (with the guard approved) leave no annotation
without metadata. ``RECONCILER_MODEL_EXAMPLES`` / ``RECONCILER_MODEL_STEPS`` raise the effort.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.ledger.repository import Scope
from annotation_reconciler.local.synthetic import PortalSpec, build_portal, write_rows
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.world import BUCKET, Clock

EXAMPLES = int(os.environ.get("RECONCILER_MODEL_EXAMPLES", "200"))
STEPS = int(os.environ.get("RECONCILER_MODEL_STEPS", "50"))
SPEC = PortalSpec(datasets=2, runs_per_dataset=2, annotations_per_voxel_spacing=3, zarr_chunks_per_annotation=0)
PORTAL = build_portal(SPEC)
KEYS = PORTAL.metadata_keys
RUNS = sorted({(a.dataset_id, a.run_name) for a in PORTAL.annotations})
TABLES = (
    "annotation_method_link, annotation_author, annotation_file, annotation_shape, annotation, "
    "tomogram_voxel_spacing, run, dataset, deposition, annotation_quarantine, missing_annotation_file"
)


class Harness:
    """What the state machine needs from the test's fixtures (set before each run)."""

    engine: Engine
    s3: Any
    db_url: str
    stats: dict[str, int]


H = Harness()


class ReconcilerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        with H.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
        self.ids = write_rows(H.engine, PORTAL)
        self.in_s3 = set(KEYS)
        for key in KEYS:
            H.s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
        self.clock = Clock()
        self.dry_run = False
        self.pending: list[ObjectChange] = []
        self.deleted: set[int] = set()
        self.seq = 0
        H.stats["examples"] += 1

    def reconciler(self, *, dry_run: bool | None = None) -> Reconciler:
        settings = Settings.from_env(
            {
                "RECONCILER_DB_URL": H.db_url,
                "RECONCILER_BUCKET": BUCKET,
                "RECONCILER_GRACE_PERIOD_HOURS": "1",
                "RECONCILER_DRY_RUN": str(self.dry_run if dry_run is None else dry_run).lower(),
                "RECONCILER_MAX_PURGE_FRACTION": "0.5",
            }
        )
        return Reconciler(H.engine, S3Storage(H.s3, BUCKET), settings, clock=self.clock, purge_batch_size=4)

    def _event(self, key: str, kind: ChangeKind) -> None:
        self.seq += 1
        when = self.clock() + datetime.timedelta(microseconds=self.seq)
        self.pending.append(ObjectChange(BUCKET, key, kind, "s3", when, f"{self.seq:016X}"))

    # --- S3 ------------------------------------------------------------------------------

    @rule(i=st.integers(0, len(KEYS) - 1))
    def delete_key(self, i: int) -> None:
        key = KEYS[i]
        H.s3.delete_object(Bucket=BUCKET, Key=key)
        self.in_s3.discard(key)
        self._event(key, ChangeKind.REMOVED)

    @rule(r=st.integers(0, len(RUNS) - 1))
    def delete_run(self, r: int) -> None:
        dataset_id, run_name = RUNS[r]
        for a in PORTAL.annotations:
            if (a.dataset_id, a.run_name) == (dataset_id, run_name):
                H.s3.delete_object(Bucket=BUCKET, Key=a.metadata_key)
                self.in_s3.discard(a.metadata_key)
                self._event(a.metadata_key, ChangeKind.REMOVED)

    @rule(i=st.integers(0, len(KEYS) - 1))
    def put_key(self, i: int) -> None:
        key = KEYS[i]
        H.s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
        self.in_s3.add(key)
        self._event(key, ChangeKind.CREATED)

    # --- delivery: duplicated, delayed, reordered, dropped --------------------------------

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        order = data.draw(st.permutations(range(len(self.pending))))
        take = data.draw(st.integers(1, len(self.pending)))
        batch = [self.pending[i] for i in order[:take]]
        if data.draw(st.booleans()):
            batch += batch[: data.draw(st.integers(0, len(batch)))]  # duplicates
        keep = data.draw(st.booleans())  # delayed: stays pending for a later delivery too
        if not keep:
            self.pending = [self.pending[i] for i in order[take:]]
        self.reconciler().apply_changes(batch)
        H.stats["events"] += len(batch)

    @precondition(lambda self: bool(self.pending))
    @rule()
    def drop_events(self) -> None:
        H.stats["dropped"] += len(self.pending)
        self.pending = []

    # --- schedule -------------------------------------------------------------------------

    @rule()
    def scan(self) -> None:
        reconciler = self.reconciler()
        for dataset_id in PORTAL.dataset_ids:
            reconciler.scan_shard(Scope(dataset_id=dataset_id))
        H.stats["scans"] += 1

    @rule()
    def purge(self) -> None:
        before = self._annotation_ids()
        self.reconciler().purge()
        gone = before - self._annotation_ids()
        self._check_deleted_were_absent(gone)
        H.stats["purges"] += 1

    @rule(hours=st.sampled_from([0.25, 0.9, 1.5, 3.0]))
    def advance(self, hours: float) -> None:
        self.clock.advance(hours=hours)

    @rule()
    def toggle_dry_run(self) -> None:
        self.dry_run = not self.dry_run

    # --- invariants -------------------------------------------------------------------------

    def _annotation_ids(self) -> set[int]:
        with H.engine.connect() as conn:
            return set(conn.execute(text("SELECT id FROM annotation")).scalars())

    def _check_deleted_were_absent(self, gone: set[int]) -> None:
        by_id = {v: k for k, v in self.ids.items()}
        for annotation_id in gone:
            assert by_id[annotation_id] not in self.in_s3, f"annotation {annotation_id} deleted with metadata in S3"
        self.deleted |= gone
        H.stats["deleted"] += len(gone)

    @invariant()
    def nothing_valid_deleted_and_no_orphans(self) -> None:
        with H.engine.connect() as conn:
            present = set(conn.execute(text("SELECT id FROM annotation")).scalars())
            orphans = conn.execute(
                text("""
                SELECT (SELECT count(*) FROM annotation_shape s WHERE NOT EXISTS
                          (SELECT 1 FROM annotation a WHERE a.id = s.annotation_id))
                     + (SELECT count(*) FROM annotation_file f WHERE NOT EXISTS
                          (SELECT 1 FROM annotation_shape s WHERE s.id = f.annotation_shape_id))
                     + (SELECT count(*) FROM annotation_author w WHERE NOT EXISTS
                          (SELECT 1 FROM annotation a WHERE a.id = w.annotation_id))
                     + (SELECT count(*) FROM annotation_method_link m WHERE NOT EXISTS
                          (SELECT 1 FROM annotation a WHERE a.id = m.annotation_id))""")
            ).scalar_one()
            purged = conn.execute(
                text(
                    "SELECT annotation_id, count(*), bool_and(snapshot IS NOT NULL) "
                    "FROM annotation_quarantine WHERE status = 'purged' GROUP BY 1"
                )
            ).all()
        missing_rows = set(self.ids.values()) - present
        assert missing_rows == self.deleted, "an annotation disappeared outside a purge"
        assert orphans == 0
        assert {r[0] for r in purged} == self.deleted
        assert all(r[1] == 1 and r[2] for r in purged), "a purged annotation has more than one purged row"

    def teardown(self) -> None:
        """Final scan and purges past grace, the guard approved: nothing without metadata remains."""
        reconciler = self.reconciler(dry_run=False)
        for dataset_id in PORTAL.dataset_ids:
            reconciler.scan_shard(Scope(dataset_id=dataset_id))
        for _ in range(3):
            for dataset_id in PORTAL.dataset_ids:
                reconciler.approve(dataset_id)
            self.clock.advance(hours=2)
            before = self._annotation_ids()
            reconciler.purge()
            self._check_deleted_were_absent(before - self._annotation_ids())
        self.nothing_valid_deleted_and_no_orphans()
        by_id = {v: k for k, v in self.ids.items()}
        left = {by_id[i] for i in self._annotation_ids()}
        assert left <= self.in_s3, f"annotations without metadata remain: {left - self.in_s3}"


def test_nothing_valid_is_ever_deleted(db_url: str, s3: Any) -> None:
    engine = make_engine(db_url, pre_ping=False)  # a round trip less per checkout: the test is all round trips
    H.engine, H.s3, H.db_url = engine, s3, db_url
    H.stats = {"examples": 0, "events": 0, "dropped": 0, "scans": 0, "purges": 0, "deleted": 0}
    run_state_machine_as_test(
        ReconcilerModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    engine.dispose()
    print(f"\nmodel-based test: {H.stats}")
    assert H.stats["examples"] >= EXAMPLES and H.stats["deleted"] > 0
