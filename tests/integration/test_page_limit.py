"""RECONCILER_SCAN_PAGE_LIMIT: a prefix that needs more LIST pages than the limit leaves its annotations
unknown (never quarantined) and the prefixes beyond it are named in one warning. Real PostgreSQL, moto S3."""

from __future__ import annotations

import pytest

from annotation_reconciler.rules.scope import Scope
from support.scenarios import reconciler
from support.seed import put_objects
from support.world import BUCKET, World


def test_a_prefix_beyond_the_page_limit_is_unknown_and_reported(small: World, caplog: pytest.LogCaptureFixture) -> None:
    ann = small.portal.annotations[0]
    folder = ann.metadata_key.rsplit("/", 2)[0] + "/"
    put_objects(small.s3, BUCKET, ((f"{folder}100/extra-{i:04d}.ndjson", b"") for i in range(1001)))  # a page + 1
    small.delete(ann.metadata_key)
    r = reconciler(small, RECONCILER_SCAN_PAGE_LIMIT="1")
    with caplog.at_level("WARNING", logger="annotation_reconciler.service.survey"):
        scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    assert scan.scope == Scope(dataset_id=ann.dataset_id)
    assert [m.getMessage() for m in caplog.records if m.name == "annotation_reconciler.service.survey"] == [
        f"1 prefix needs more LIST pages than RECONCILER_SCAN_PAGE_LIMIT=1; their annotations are unknown: {folder}"
    ]
    assert scan.over_page_limit == [folder] and scan.errors == [] and scan.quarantined == []
    assert [u.ref.id for u in scan.unknown] == [small.ids[ann.metadata_key]]
    assert "RECONCILER_SCAN_PAGE_LIMIT=1" in scan.unknown[0].why
    assert reconciler(small).scan_shard(Scope(dataset_id=ann.dataset_id)).quarantined == [small.ids[ann.metadata_key]]


def test_prefixes_beyond_the_page_limit_are_named_in_one_warning(
    small: World, caplog: pytest.LogCaptureFixture
) -> None:
    folders = sorted({a.metadata_key.rsplit("/", 2)[0] + "/" for a in small.portal.annotations})[:2]
    for folder in folders:
        put_objects(small.s3, BUCKET, ((f"{folder}100/extra-{i:04d}.ndjson", b"") for i in range(1001)))
    with caplog.at_level("WARNING", logger="annotation_reconciler.service.survey"):
        scan = reconciler(small, RECONCILER_SCAN_PAGE_LIMIT="1").scan_shard(Scope())
    assert scan.over_page_limit == folders
    assert [m.getMessage() for m in caplog.records if m.name == "annotation_reconciler.service.survey"] == [
        f"2 prefixes need more LIST pages than RECONCILER_SCAN_PAGE_LIMIT=1; their annotations are unknown: "
        f"{folders[0]}, {folders[1]}"
    ]
