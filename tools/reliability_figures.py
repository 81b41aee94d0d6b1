"""RELIABILITY.md's run figures, measured by running the tests that produce them and written with their commit.

    .venv/bin/python tools/reliability_figures.py model --examples 1000 --markdown RELIABILITY.md   # make test-deep
    .venv/bin/python tools/reliability_figures.py faults --markdown RELIABILITY.md                  # make docs
    .venv/bin/python tools/reliability_figures.py corpus --markdown RELIABILITY.md                  # make docs

``model`` runs the model-based test (tests/reliability/test_model.py) at ``--examples`` and writes its counters
(examples, steps, rule calls, deletions by path) into the ``model-run`` block; ``faults`` runs the fault, security
and bad-input tests in one process and writes the faults they injected, by kind, into ``faults-injected``;
``corpus`` counts the bad-input corpus (``tests/data``) into ``bad-input-corpus``. Each refuses (exit 2) while
``lambdas/`` or ``tests/`` hold uncommitted changes, and writes nothing when the tests fail.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.docblock import DirtyTree, require_clean, short, write_block

from annotation_reconciler.names import Env

ROOT = Path(__file__).resolve().parents[1]
MEASURED_PATHS = ("lambdas", "tests")
#: The environment variable the tests write their figures to (tests/reliability/conftest.py, test_model.py).
FIGURES_ENV = "ANNOTATION_RECONCILER_FIGURES_JSON"
FAULT_TESTS = (
    "tests/reliability/test_faults.py",
    "tests/reliability/test_security.py",
    "tests/reliability/test_bad_input.py",
)
MODEL_TEST = "tests/reliability/test_model.py"


def run_tests(paths: tuple[str, ...], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run ``paths`` in one pytest process; returns the figures the tests wrote and the wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        lambdas = str(ROOT / "lambdas")
        full_env = {
            **os.environ,
            **env,
            FIGURES_ENV: str(figures),
            "PYTHONPATH": os.pathsep.join(p for p in (lambdas, os.environ.get("PYTHONPATH", "")) if p),
        }
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", *paths],
            cwd=ROOT,
            env=full_env,
            check=False,
        )
        wall = time.monotonic() - started
        if out.returncode != 0:
            raise RuntimeError(f"the tests failed (pytest exit {out.returncode}): no figure written")
        return (json.loads(figures.read_text()) if figures.exists() else {}), wall


def stamp(commit: str, command: str, wall_s: float | None = None) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    took = f", {wall_s / 60:.1f} min of pytest" if wall_s is not None else ""
    return f"Written by `{command}` at commit `{short(commit)}` on {today}{took}."


def render_model(figures: dict[str, Any], commit: str, command: str, wall_s: float | None) -> str:
    stats: dict[str, int] = figures["stats"]
    steps = figures["steps"]
    rules = sorted(
        ((k.removeprefix("rule "), v) for k, v in stats.items() if k.startswith("rule ")), key=lambda r: -r[1]
    )
    rows = [
        (f"examples asked for / of exactly {steps} steps run",
         f"{figures['examples']:,} / {stats.get(f'examples of {steps} steps', 0):,}"),
        ("steps run in all", f"{stats.get('steps', 0):,}"),
        ("rule calls", ", ".join(f"{name} {n:,}" for name, n in rules)),
    ]  # fmt: skip
    rows += [
        (name, f"{value:,}")
        for name, value in sorted(stats.items())
        if not name.startswith(("rule ", "examples", "steps"))
    ]
    rows.append(("invariant violations (rows lost)", "0 (the test passed: any violation fails it)"))
    lines = [stamp(commit, command, wall_s), "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def render_faults(injected: dict[str, int], commit: str, command: str, wall_s: float | None) -> str:
    lines = [stamp(commit, command, wall_s), "", "| faults injected | count |", "|---|---:|"]
    lines += [f"| {kind} | {count:,} |" for kind, count in sorted(injected.items())]
    lines.append(f"| **in all** | **{sum(injected.values()):,}** |")
    return "\n".join(lines)


def corpus_counts(root: Path = ROOT) -> dict[str, Any]:
    events = sorted((root / "tests" / "data" / "bad_events").glob("*.json"))
    configs = sorted((root / "tests" / "data" / "bad_config").glob("*.json"))
    expects: Counter[str] = Counter()
    for path in events:
        if path.suffix == ".json":
            expect = json.loads(path.read_text()).get("expect")
            if isinstance(expect, str):
                expects[expect] += 1
    return {"event files": len(events), "config files": len(configs), "expect": dict(expects)}


def render_corpus(counts: dict[str, Any], commit: str, command: str) -> str:
    expects = ", ".join(f"{kind} {n}" for kind, n in sorted(counts["expect"].items()))
    return "\n".join(
        [
            stamp(commit, command),
            "",
            "| corpus | files | expected outcomes (the files' `expect`) |",
            "|---|---:|---|",
            f"| `tests/data/bad_events/*.json` | {counts['event files']} | {expects} |",
            f"| `tests/data/bad_config/*.json` | {counts['config files']} | refused at cold start |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("model", "faults", "corpus"))
    parser.add_argument("--examples", type=int, default=1000, help=f"model: examples ({Env.MODEL_EXAMPLES})")
    parser.add_argument("--markdown", type=Path, help="write the figures into this file (RELIABILITY.md)")
    parser.add_argument(
        "--run-when-dirty",
        action="store_true",
        help="with uncommitted changes, still run the tests (make test-deep) but write nothing",
    )
    args = parser.parse_args(argv)
    try:
        commit = require_clean(MEASURED_PATHS, f"{args.what} figures")
    except DirtyTree as err:
        if args.markdown and not args.run_when_dirty:
            print(f"reliability_figures: {err}", file=sys.stderr)
            return 2
        if args.markdown:
            print(f"reliability_figures: {err} The tests run; nothing is written.", file=sys.stderr)
        commit, args.markdown = "", None
    command = f"tools/reliability_figures.py {args.what}" + (
        f" --examples {args.examples}" if args.what == "model" else ""
    )
    try:
        if args.what == "model":
            figures, wall = run_tests((MODEL_TEST,), {Env.MODEL_EXAMPLES: str(args.examples)})
            block, body = "model-run", render_model(figures["model"], commit, command, wall)
        elif args.what == "faults":
            figures, wall = run_tests(FAULT_TESTS, {})
            block, body = "faults-injected", render_faults(figures.get("faults", {}), commit, command, wall)
        else:
            block, body = "bad-input-corpus", render_corpus(corpus_counts(), commit, command)
    except RuntimeError as err:
        print(f"reliability_figures: {err}", file=sys.stderr)
        return 1
    print(body)
    if args.markdown and commit:
        write_block(args.markdown, block, body)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
