"""The audit says who decided (issue 16): a purged row keeps the source that quarantined it (event or scan),
and a release or an approval names its operator. Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime

from click.testing import CliRunner

from annotation_reconciler.cli.main import cli
from annotation_reconciler.rules.scope import Scope
from support.scenarios import ledger_rows, reconciler, three_of_five_purged
from support.world import World, removed


def test_the_purged_row_keeps_the_source_that_quarantined_it_and_operators_are_named(world: World) -> None:
    by_scan, by_event = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(by_scan, by_event)
    r = reconciler(world, RECONCILER_MAX_PURGE_FRACTION="0.5")
    r.apply_changes(removed(by_event))
    r.scan_shard(Scope(dataset_id=10001))
    world.clock.advance(hours=2)
    assert sorted(r.purge().deleted) == sorted([world.ids[by_scan], world.ids[by_event]])
    sources = {row.annotation_id: (row.status, row.source) for row in ledger_rows(world.engine)}
    assert sources == {world.ids[by_scan]: ("purged", "scan"), world.ids[by_event]: ("purged", "event")}
    released = world.portal.metadata_keys[2]
    world.delete(released)
    r.apply_changes(removed(released))
    r.release(world.ids[released], by="carol")
    row = next(x for x in ledger_rows(world.engine) if x.annotation_id == world.ids[released])
    assert (row.status, row.resolved_by, row.exempt) == ("released", "carol", True)
    assert "released by carol" in row.resolution


def test_an_approval_names_the_operator_and_the_purge_keeps_it(small: World) -> None:
    stale_keys, r, purge = three_of_five_purged(small)
    assert sorted(purge.held) == sorted(small.ids[k] for k in stale_keys)  # 3 of 5: beyond the floor
    out = CliRunner().invoke(cli, ["approve", "--db-url", small.db_url, "--dataset-id", "10001", "--by", "frank"])
    assert out.exit_code == 0, out.output
    small.clock.now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)  # the CLI's wall clock
    assert sorted(r.purge().deleted) == sorted(small.ids[k] for k in stale_keys)
    rows = [(row.status, row.approved_by, row.approved_at is not None) for row in ledger_rows(small.engine)]
    assert rows == [("purged", "frank", True)] * 3
