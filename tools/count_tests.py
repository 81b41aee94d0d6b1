"""`make docs`: the suite's test counts, from ``pytest --collect-only``, written into the documents with their commit.

    .venv/bin/python tools/count_tests.py                                    # print the table
    .venv/bin/python tools/count_tests.py --markdown RELIABILITY.md README.md   # what `make docs` runs

``--markdown`` replaces the part of each file between ``<!-- test-counts:begin -->`` and
``<!-- test-counts:end -->`` (appending the markers if missing). It refuses (exit 2) while ``tests/`` or
``lambdas/`` hold uncommitted changes: the counts name the commit they were collected at.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.docblock import DirtyTree, require_clean, short, write_block

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "test-counts"
MEASURED_PATHS = ("tests", "lambdas")
#: The parts of the suite, in the order of the table; "fast" ones are those `make mutate` runs.
PARTS = ("unit", "integration", "reliability", "infra", "e2e", "figures")
FAST = ("unit", "integration")


def collected(output: str) -> list[str]:
    """The test ids of ``pytest --collect-only -q``'s output (one ``path::name`` a line, then a summary)."""
    return [line.strip() for line in output.splitlines() if "::" in line and not line.startswith(" ")]


def count_parts(ids: list[str]) -> Counter[str]:
    """Tests per part of the suite: ``tests/unit/test_x.py::t`` counts under ``unit``."""
    parts: Counter[str] = Counter()
    for test_id in ids:
        path = test_id.split("::", 1)[0].split("/")
        parts[path[1] if len(path) > 2 and path[0] == "tests" else "other"] += 1
    return parts


def render(parts: Counter[str], commit: str) -> str:
    total = sum(parts.values())
    fast = sum(parts[p] for p in FAST)
    lines = [
        f"Collected by `tools/count_tests.py` (`make docs`: `pytest --collect-only`) at commit `{short(commit)}`: "
        f"**{total:,} tests**, {fast:,} of them the fast ones (`tests/unit` and `tests/integration`, what "
        "`make mutate` runs).",
        "",
        "| part | tests |",
        "|---|---:|",
    ]
    for part in (*PARTS, *sorted(set(parts) - set(PARTS))):
        if parts[part]:
            lines.append(f"| `tests/{part}` | {parts[part]:,} |" if part != "other" else f"| other | {parts[part]:,} |")
    lines.append(f"| **all** | **{total:,}** |")
    return "\n".join(lines)


def collect() -> list[str]:
    # this checkout's package, whichever checkout the virtualenv's editable install points at
    paths = [str(ROOT / "lambdas"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pytest --collect-only failed (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr}")
    return collected(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, nargs="*", default=[], help="files to write the counts into")
    args = parser.parse_args(argv)
    try:
        commit = require_clean(MEASURED_PATHS, "test counts")
    except DirtyTree as err:
        if args.markdown:
            print(f"count_tests: {err}", file=sys.stderr)
            return 2
        commit = "uncommitted"
    table = render(count_parts(collect()), commit)
    print(table)
    for path in args.markdown:
        write_block(path, BLOCK, table)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
