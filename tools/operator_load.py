"""How many of the synthetic portal's deletions need an operator, under the rules of commit bd52465
(before issue 16) and under today's, at the shipped defaults (RECONCILER_MAX_PURGE_FRACTION=0.1)::

    .venv/bin/python tools/operator_load.py            # the table, for three portal shapes
    .venv/bin/python tools/operator_load.py --json
    .venv/bin/python tools/operator_load.py --markdown RELIABILITY.md   # make docs: its table, with the commit

Both rule sets are the real ``lifecycle.decide``: today's is imported, the old one is read from git
(``git show bd52465:lambdas/annotation_reconciler/lifecycle.py``, its imports pointed at where those modules
live now) and loaded beside it. No S3 and no
database: the bucket is the synthetic portal's key set (``local/synthetic.py``), every listing is the
complete answer S3 would give, and the dataset-folder check answers what a LIST of one key would.

Each *deletion* is one change to the bucket, seen two ways:

- **event**: every removed metadata key is quarantined by its event; the purge judges the dataset's rows
  together (the guard's count is every open row of the dataset);
- **scan** (the events were lost): the scan judges the dataset's rows fresh (the empty-prefix rule), then
  the purge judges what it quarantined, as above.

A deletion *needs an operator* when any of its rows is held on that path (``approve`` is the only way on).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.docblock import DirtyTree, require_clean, short, write_block

from annotation_reconciler.local.synthetic import PortalSpec, SyntheticAnnotation, SyntheticPortal, build_portal
from annotation_reconciler.rules import guards, lifecycle
from annotation_reconciler.rules import listings as listings_of
from annotation_reconciler.rules.paths import BucketLayout

BEFORE = "bd52465"
FRACTION = 0.1  # the shipped default
ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "synthetic default (2 datasets x 3 runs x 3 annotations)": PortalSpec(),
    "demo (3 datasets x 8 runs x 8 annotations)": PortalSpec(
        datasets=3, runs_per_dataset=8, annotations_per_voxel_spacing=8
    ),
    "one annotation per voxel spacing (4 datasets x 5 runs)": PortalSpec(
        datasets=4, runs_per_dataset=5, annotations_per_voxel_spacing=1
    ),
}


def old_lifecycle() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:lambdas/annotation_reconciler/lifecycle.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # the modules it imports have moved into rules/ since (issue 31); their names and contents are the same
    source = source.replace("from annotation_reconciler.paths import", "from annotation_reconciler.rules.paths import")
    spec = importlib.util.spec_from_loader("lifecycle_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lifecycle_before"] = module  # dataclasses look their module up
    exec(compile(source, f"{BEFORE}:lifecycle.py", "exec"), module.__dict__)
    return module


def _stale(module: types.ModuleType) -> Any:
    """The verdict a deletion path deletes on: ``STALE`` today, ``DELETE`` in the old rules (renamed in issue 31)."""
    return getattr(module.Verdict, "STALE", None) or module.Verdict.DELETE


@dataclass(frozen=True)
class Deletion:
    kind: str
    removed: frozenset[str]  # keys gone from the bucket


def deletions(portal: SyntheticPortal) -> list[Deletion]:
    keys = list(portal.all_keys())

    def under(prefix: str) -> frozenset[str]:
        return frozenset(k for k in keys if k.startswith(prefix))

    found: list[Deletion] = []
    for ann in portal.annotations:
        found.append(Deletion("one annotation's metadata", frozenset({ann.metadata_key})))
        found.append(Deletion("one annotation's folder (metadata and data)", under(_folder(ann))))
    for prefix in sorted({a.voxel_spacing_prefix + "Annotations/" for a in portal.annotations}):
        found.append(Deletion("every annotation of a voxel spacing", under(prefix)))
    for run in portal.runs:
        found.append(Deletion("a whole run", under(f"{run.dataset_id}/{run.name}/")))
    for dataset_id in portal.dataset_ids:
        found.append(Deletion("a whole dataset", under(f"{dataset_id}/")))
    found.append(Deletion("a prefix setting that matches nothing", frozenset(keys)))
    return found


def _folder(ann: SyntheticAnnotation) -> str:
    return ann.metadata_key.rsplit("/", 1)[0] + "/"


def listing(bucket: frozenset[str], prefix: str) -> frozenset[str]:
    return frozenset(k for k in bucket if k.startswith(prefix))


def neighbours(bucket: frozenset[str], prefixes: Iterable[str]) -> dict[str, bool | BaseException]:
    return {p: any(k.startswith(guards.dataset_folder(p)) and not k.startswith(p) for k in bucket) for p in prefixes}


def needs_operator(
    module: Any, portal: SyntheticPortal, deletion: Deletion, path: str, *, new: bool
) -> tuple[bool, int, int]:
    """(needs an operator?, rows held, rows purged) for one deletion on one path."""
    layout = BucketLayout(portal.spec.bucket)
    bucket = frozenset(portal.all_keys()) - deletion.removed
    gone = [a for a in portal.annotations if a.metadata_key in deletion.removed]
    held = purged = 0
    for dataset_id in sorted({a.dataset_id for a in gone}):
        rows = [a for a in portal.annotations if a.dataset_id == dataset_id]
        total = len(rows)
        paths = [portal.stored_path(a.metadata_key, i) for i, a in enumerate(rows)]
        fresh = [_candidate(module, i, p, dataset_id) for i, p in enumerate(paths)]
        prefixes = listings_of.prefixes_to_list(a.metadata_key for a in rows)
        listings = {p: listing(bucket, p) for p in prefixes}
        if path == "scan":
            evidence = (
                module.Evidence(listings, neighbours=neighbours(bucket, guards.empty_prefixes(listings)))
                if new
                else module.Evidence(listings)
            )
            decided = module.decide(fresh, evidence, layout, max_fraction=None)
            held += len(decided.of(module.Verdict.HELD))
            doomed = [d.candidate for d in decided.of(_stale(module))]
        else:
            doomed = [c for c, a in zip(fresh, rows, strict=True) if a.metadata_key in deletion.removed]
        quarantined = [
            _candidate(
                module,
                c.annotation_id,
                paths[c.annotation_id],
                dataset_id,
                quarantine_id=1000 + c.annotation_id,
                quarantined_path=paths[c.annotation_id],
                quarantined_key=layout.to_key(paths[c.annotation_id]),
            )
            for c in doomed
        ]
        evidence = module.Evidence(listings, {dataset_id: 0}, {dataset_id: total})
        decided = module.decide(quarantined, evidence, layout, max_fraction=FRACTION)
        held += len(decided.of(module.Verdict.HELD))
        purged += len(decided.of(_stale(module)))
    return held > 0, held, purged


def _candidate(module: Any, aid: int, stored_path: str, dataset_id: int, **ledger: Any) -> Any:
    """A candidate row of run 1 for either rule set: today's holds the row as an ``AnnotationRef``, the old one
    held its fields."""
    if "ref" in {f.name for f in fields(module.Candidate)}:
        return module.Candidate(module.AnnotationRef(aid, stored_path, dataset_id, 1), **ledger)
    return module.Candidate(aid, stored_path, dataset_id, 1, **ledger)


def measure() -> dict[str, Any]:
    before = old_lifecycle()
    report: dict[str, Any] = {}
    for shape, spec in SHAPES.items():
        portal = build_portal(spec)
        rows: dict[str, dict[str, int]] = {}
        for deletion in deletions(portal):
            row = rows.setdefault(deletion.kind, {"deletions": 0})
            row["deletions"] += 1
            for path in ("event", "scan"):
                for label, module, new in (("before", before, False), ("after", lifecycle, True)):
                    needs, _, _ = needs_operator(module, portal, deletion, path, new=new)
                    name = f"{path}_{label}"
                    row[name] = row.get(name, 0) + int(needs)
        report[shape] = rows
    return report


def render_markdown(report: dict[str, Any], commit: str) -> str:
    """Per portal shape: its deletions, and how many need an operator before (BEFORE) and now, both paths."""
    lines = [
        f"Written by `tools/operator_load.py --markdown RELIABILITY.md` (`make docs`) at commit `{short(commit)}`, "
        f"against the rules of {BEFORE}.",
        "",
        "| portal shape | deletions | need an operator, events delivered: before → after | events lost (scan): "
        "before → after |",
        "|---|---:|---|---|",
    ]
    for shape, rows in report.items():
        total = {k: sum(r[k] for r in rows.values()) for k in ("deletions", *COLUMNS)}
        lines.append(
            f"| {shape} | {total['deletions']} | {total['event_before']} → {total['event_after']} | "
            f"{total['scan_before']} → {total['scan_after']} |"
        )
    return "\n".join(lines)


COLUMNS = ("event_before", "event_after", "scan_before", "scan_after")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", type=Path, help="write the totals into this file's operator-load block")
    args = parser.parse_args(argv)
    commit = ""
    if args.markdown:
        try:
            commit = require_clean(("lambdas", "tools"), "operator-load figures")
        except DirtyTree as err:
            print(f"operator_load: {err}", file=sys.stderr)
            return 2
    report = measure()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if args.markdown:
        write_block(args.markdown, "operator-load", render_markdown(report, commit))
        print(f"wrote {args.markdown}")
        return 0
    for shape, rows in report.items():
        print(f"\n{shape}: deletions that need an operator (events delivered | events lost, scan)")
        print(f"{'deletion':48} {'n':>4}  {'event before':>12} {'after':>5}  {'scan before':>11} {'after':>5}")
        totals = dict.fromkeys(("deletions", "event_before", "event_after", "scan_before", "scan_after"), 0)
        for kind, row in rows.items():
            print(
                f"{kind:48} {row['deletions']:>4}  {row['event_before']:>12} {row['event_after']:>5}  "
                f"{row['scan_before']:>11} {row['scan_after']:>5}"
            )
            for k in totals:
                totals[k] += row[k]
        print(
            f"{'all':48} {totals['deletions']:>4}  {totals['event_before']:>12} {totals['event_after']:>5}  "
            f"{totals['scan_before']:>11} {totals['scan_after']:>5}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
