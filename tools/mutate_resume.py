"""``tools/mutate.py --resume``: go on with the last run in ``build/mutmut/``.

A run over many files sorts its mutants by their tests' time, so a file is done only when the whole run is; stopped,
or to give some of its files the machine first, it goes on here: only its mutants not checked yet (of the files
named, else all of the run's), on the same stage and stats, at the run's commit; then the whole run is reported.
``--report-only --markdown`` writes the tables afterwards.
"""

from __future__ import annotations

import json
import sys
import time

from tools import mutate
from tools.docblock import DirtyTree, dirty_paths, head_commit


def resume(items: list[str], patterns: list[str], max_children: int, fail_under: float | None) -> int:
    """Run the last run's mutants not checked yet (of ``items``' files, else all of the run's), on the same stage and
    stats, then report the whole run. The checkout must still be at the run's commit."""
    record_path = mutate.STAGE / mutate.RUN_RECORD
    if not (mutate.STAGE / "mutants").is_dir() or not record_path.exists():
        print(f"mutate: no run to resume in {mutate.STAGE}", file=sys.stderr)
        return 2
    record = json.loads(record_path.read_text())
    try:
        head = head_commit(mutate.ROOT)
    except DirtyTree as err:
        print(f"mutate: {err}", file=sys.stderr)
        return 2
    if head != record.get("commit") or dirty_paths(mutate.MEASURED_PATHS, mutate.ROOT):
        measured = record.get("commit")
        print(f"mutate: the run measured {measured!r}; this checkout is not that commit, clean", file=sys.stderr)
        return 2
    run_patterns = list(record.get("patterns", []))
    pending = sorted(n for n, v in mutate.verdicts(patterns or run_patterns).items() if v == "not checked")
    print(f"mutate: resuming {len(pending)} mutants not checked yet in {mutate.STAGE.relative_to(mutate.ROOT)}")
    started = time.monotonic()
    if pending:
        run = mutate.run_mutants(max_children, pending)
        if run.returncode != 0:
            print(f"mutate: mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return 1
    return mutate.report(mutate.verdicts(run_patterns), time.monotonic() - started, fail_under)
