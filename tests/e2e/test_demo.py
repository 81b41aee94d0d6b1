"""The demo's story, headless: the real handlers on a local PostgreSQL and moto server."""

from __future__ import annotations

import io
import re

from rich.console import Console

from annotation_reconciler.local.demo import run_story


def test_demo_story_ends_with_the_expected_table() -> None:
    out = io.StringIO()
    summary = run_story(Console(file=out, width=160))  # wide enough that no line the test reads wraps
    text = out.getvalue()
    assert summary.purged == summary.expected_purged and len(summary.purged) == 11
    assert summary.before["annotation"] - summary.after["annotation"] == 11
    assert summary.before["annotation_file"] - summary.after["annotation_file"] == 33
    assert summary.ledger == {"quarantined": 1, "released": 1, "held": 64, "purged": 11, "restored": 1}
    assert summary.stale_left == 65  # the held dataset and the dry-run annotation
    rows = dict(re.findall(r"│ (quarantine: \w+|annotation\w*)\s+│\s+\d+ │\s+(\d+) │", text))
    assert rows["annotation"] == str(summary.after["annotation"]) and rows["quarantine: held"] == "64"
    assert "purged exactly the expected annotations: yes" in text
    # scene 6, at the shipped guard (0.1): one annotation gone from a healthy run is purged without approval
    scene = text[text.index("6. An ordinary retraction") : text.index("7. The same flow")]
    assert "RECONCILER_MAX_PURGE_FRACTION=0.1" in scene and "the scan: quarantined" in scene
    assert "'deleted': 1," in scene and "'held': 0," in scene and "(no operator needed)" in scene
    assert "put back 1 annotation, 2 annotation_shape, 3 annotation_file" in scene
