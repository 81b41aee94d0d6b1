"""`make mutate`: mutmut 3 over the decision and deletion code, against the fast tests, then a score.

    .venv/bin/python tools/mutate.py                                  # every module of [tool.mutmut] only_mutate
    .venv/bin/python tools/mutate.py --only lifecycle.py paths.py     # a subset (make mutate MUTATE="…")
    .venv/bin/python tools/mutate.py --only portal/annotation_rows.py:annotations_in_scope   # one function (a glob)

mutmut 3 copies the code into ``mutants/`` and imports it from ``mutants/``, ``mutants/src`` or
``mutants/source`` only, and names a mutant after its file's path with just a ``src.`` prefix dropped. Our
package lives under ``lambdas/``, so mutmut runs from a staging folder, ``build/mutmut/``, where ``src`` is a
link to ``lambdas/`` and ``tests`` to ``tests/``: the mutants are ``build/mutmut/mutants/src/annotation_reconciler``,
mutmut puts that folder first on ``sys.path`` and drops ``src`` (that is, ``lambdas/``, where the editable
install points) from it, so the tests import the mutated copy.

mutmut runs through tools/mutmut_run.py (its timeouts signal only its own children). One PostgreSQL server,
its files under build/mutmut/, is started here and shared by every pytest session mutmut runs (its stats run, its
clean run and one forked session per mutant) through RECONCILER_TEST_DATABASE_URL; RECONCILER_TEST_WORKER_SLOTS
gives each concurrent process its own database names (tests/support/worker_id.py).

The staging folder is rebuilt on every run, so every score comes from a fresh run (mutmut's cache could keep
the verdict of a survivor after a test was added to kill it). After the run: the counts, the score
(killed / mutants), each survivor with its diff (all the diffs are written to build/mutmut/survivors.diff), and
the wall time.

``--markdown RELIABILITY.md`` also writes the scores into that file's table (between the markers
``mutation-scores``): one row per file of only_mutate, each with the commit and date of the run that measured it
and whether the file changed since; a run over some files replaces only their rows. A run of functions
(``FILE:GLOB`` items only) writes its rows, one per item, into a second table (``mutation-functions``) instead. It
refuses (exit 2) while ``lambdas/`` or ``tests/`` hold uncommitted changes. The mutants not killed go to
``MUTATION_SURVIVORS.md`` (one section per file or item, replaced the same way), which RELIABILITY.md links.
``--report-only`` writes the table and the survivors from the last run's results in ``build/mutmut/`` without
running anything (its commit from ``build/mutmut/run.json``, or ``--commit`` for a run started before it existed;
``--stage DIR`` reads another checkout's ``build/mutmut/`` and writes nothing there). A file with a mutant not checked
(a run stopped or still going) gets no row.

This module runs mutmut and prints; ``tools/mutation_results.py`` reads the configuration and mutmut's verdicts,
``tools/mutation_tables.py`` writes the markdown tables and the survivors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.docblock import DirtyTree, dirty_paths, head_commit, require_clean
from tools.mutation_results import (
    KILLED,
    ROOT,
    UsageError,
    killed,
    measured_only,
    modules_of,
    mutmut_config,
    name_patterns,
    parse_verdicts,
)
from tools.mutation_tables import write_scores

from annotation_reconciler.names import Env

STAGE = ROOT / "build" / "mutmut"
# mutmut's names for the verdicts (mutmut results); those of KILLED count as killed.
ORDER = (
    "killed",
    "caught by type check",
    "survived",
    "timeout",
    "no tests",
    "suspicious",
    "segfault",
    "skipped",
    "not checked",
)
#: The code a score is of: --markdown refuses while these differ from HEAD.
MEASURED_PATHS = ("lambdas", "tests")
RUN_RECORD = "run.json"


def stage() -> None:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    (STAGE / "src").symlink_to(ROOT / "lambdas", target_is_directory=True)
    (STAGE / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    (STAGE / "bench").symlink_to(ROOT / "bench", target_is_directory=True)  # tests/unit/test_bench_layout.py
    (STAGE / "infra").symlink_to(ROOT / "infra", target_is_directory=True)  # tests/unit/test_settings.py
    (STAGE / "tools").symlink_to(ROOT / "tools", target_is_directory=True)  # the layout table names its modules
    (STAGE / "README.md").symlink_to(ROOT / "README.md")  # tests/unit/test_layers.py: the layout table
    shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")


def mutmut(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> subprocess.CompletedProcess[str]:
    # mutmut's command line, with its timeouts limited to its own children (tools/mutmut_run.py)
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutmut_run.py"), *args],
        cwd=STAGE,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def run_mutants(max_children: int, names: list[str]) -> subprocess.CompletedProcess[str]:
    """``mutmut run`` of these mutant names or globs in the stage, with one PostgreSQL server of its own (its files
    under build/mutmut/, not the system temp dir, where others clean up) shared by every pytest session it runs."""
    # imported only here: nothing of the package is loaded in this process before the command line is checked
    sys.path.insert(0, str(ROOT / "lambdas"))
    from annotation_reconciler.local.postgres import LocalPostgres

    tempfile.tempdir = str(STAGE)
    with LocalPostgres() as server:
        env = {**os.environ, Env.TEST_DATABASE_URL: server.url, Env.TEST_WORKER_SLOTS: str(STAGE / "worker-slots")}
        # the type_check_command's `python` is this virtualenv's (it has mypy and the package's stubs)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return mutmut("run", "--max-children", str(max_children), *names, env=env)


def verdicts(patterns: list[str]) -> dict[str, str]:
    """mutant name -> verdict, for the mutants the patterns select (all if none)."""
    out = mutmut("results", "--all", "true", capture=True)
    if out.returncode != 0:
        raise RuntimeError(f"mutmut results failed: {out.stderr.strip()}")
    return parse_verdicts(out.stdout, patterns)


def report(
    found: dict[str, str],
    wall_s: float,
    fail_under: float | None,
    diffs_out: dict[str, str] | None = None,
    write_diffs: bool = True,
) -> int:
    counts = Counter(found.values())
    total = len(found)
    if total == 0:
        print("mutate: no mutant was selected or run", file=sys.stderr)
        return 1
    by_module: dict[str, Counter[str]] = {}
    for name, status in found.items():
        # NAME is MODULE.x_FUNCTION__mutmut_N or MODULE.xǁCLASSǁMETHOD__mutmut_N
        parts = name.split(".")
        module = ".".join(next(parts[:i] for i in range(len(parts) - 1, 0, -1) if parts[i].startswith(("x_", "xǁ"))))
        by_module.setdefault(module, Counter())[status] += 1
    print()
    print("## Mutation score (mutmut, fast tests: tests/unit + tests/integration)")
    print()
    print(f"| module | mutants | {' | '.join(s for s in ORDER if counts[s])} | killed % |")
    print(f"|---|---:|{'---:|' * sum(1 for s in ORDER if counts[s])}---:|")
    for module, c in sorted(by_module.items()):
        n = sum(c.values())
        cells = " | ".join(str(c[s]) for s in ORDER if counts[s])
        print(f"| {module} | {n} | {cells} | {100 * killed(c) / n:.1f} |")
    cells = " | ".join(str(counts[s]) for s in ORDER if counts[s])
    score = 100 * killed(counts) / total
    print(f"| **all** | {total} | {cells} | **{score:.1f}** |")
    others = sorted(set(counts) - set(ORDER))
    if others:
        print(f"other verdicts: {', '.join(f'{s} {counts[s]}' for s in others)}")
    print()
    wall = f" ; wall time {wall_s / 60:.1f} min" if wall_s else ""
    print(f"score: {killed(counts)} killed / {total} mutants = {score:.1f} %{wall}")

    # a mutant not checked (a run stopped, or still going) has no verdict to show
    unkilled = sorted(name for name, status in found.items() if status not in {*KILLED, "not checked"})
    diffs = []
    for name in unkilled:
        shown = mutmut("show", name, capture=True)
        diffs.append(shown.stdout if shown.returncode == 0 else f"# {name}: mutmut show failed: {shown.stderr}\n")
    if write_diffs:
        (STAGE / "survivors.diff").write_text("\n".join(diffs))
    if diffs_out is not None:
        diffs_out.update(zip(unkilled, diffs, strict=True))
    if unkilled:
        print()
        print(f"not killed ({len(unkilled)}; diffs in {STAGE}/survivors.diff):")
        for name, diff in zip(unkilled, diffs, strict=True):
            changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
            print(f"  {found[name]:10} {name}")
            for line in changed:
                print(f"               {line.strip()[:150]}")
        print()
        print(f"one mutant: cd {STAGE} && {sys.executable} {ROOT / 'tools' / 'mutmut_run.py'} show NAME")
    if fail_under is not None and score < fail_under:
        print(f"mutate: score {score:.1f} % is under --fail-under {fail_under}", file=sys.stderr)
        return 1
    return 0


def run_record(items: list[str], patterns: list[str], date: str) -> dict[str, object]:
    """What a later ``--report-only`` needs to know of this run: the commit, whether the measured code differed
    from it, the files run and the date."""
    try:
        commit, dirty = head_commit(ROOT), dirty_paths(MEASURED_PATHS, ROOT)
    except DirtyTree:
        commit, dirty = "", []
    return {"commit": commit, "dirty": dirty, "items": items, "patterns": patterns, "date": date}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="files of only_mutate (relative to the package), optionally FILE:FUNCTION_GLOB; default: all of them",
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 if the score (%%) is lower")
    parser.add_argument(
        "--markdown",
        type=Path,
        help="write the scores into this file's table (RELIABILITY.md) and the survivors into MUTATION_SURVIVORS.md",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report (and with --markdown write) the last run's results kept in build/mutmut/",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the last run in build/mutmut/ (stopped, or to give some of its files the machine first): run "
        "only its mutants not checked yet, of the --only files (default: the run's), then report the whole run",
    )
    parser.add_argument("--commit", help="with --report-only: the commit the last run measured, if run.json lacks it")
    parser.add_argument(
        "--stage",
        type=Path,
        help="with --report-only: another checkout's build/mutmut (a run made there); read only, nothing written in it",
    )
    args = parser.parse_args(argv)
    try:
        modules = modules_of(mutmut_config())
        items = [i for item in args.only for i in item.replace(",", " ").split()]
        patterns = name_patterns(items, modules)
        if args.max_children < 1:
            raise UsageError("--max-children must be at least 1")
        if args.markdown and any(":" in item for item in items) and not all(":" in item for item in items):
            raise UsageError(
                "--markdown writes whole files' scores (mutation-scores) or functions' (mutation-functions): give "
                "files, or FILE:FUNCTION globs, not both"
            )
        if args.resume and (args.report_only or args.markdown):
            raise UsageError("--resume runs and reports; write the tables afterwards with --report-only --markdown")
        if (args.commit or args.stage) and not args.report_only:
            raise UsageError("--commit and --stage go with --report-only (a run measures HEAD, staged here)")
    except UsageError as err:
        print(f"mutate: {err}", file=sys.stderr)
        return 2

    if args.report_only:
        global STAGE
        foreign = args.stage is not None and args.stage.resolve() != STAGE.resolve()
        STAGE = args.stage.resolve() if args.stage else STAGE
        return report_only(
            args.markdown, items, patterns, args.commit, modules, args.fail_under, write_diffs=not foreign
        )
    if args.resume:
        from tools.mutate_resume import resume

        return resume(items, patterns, args.max_children, args.fail_under)
    commit = ""
    if args.markdown:
        try:
            commit = require_clean(MEASURED_PATHS, f"mutation scores written into {args.markdown}")
        except DirtyTree as err:
            print(f"mutate: {err}", file=sys.stderr)
            return 2

    stage()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    record = run_record(items, patterns, date)
    (STAGE / RUN_RECORD).write_text(json.dumps(record))
    started = time.monotonic()
    print(f"mutate: mutmut run {' '.join(patterns) or '(all of only_mutate)'} in {STAGE.relative_to(ROOT)}")
    run = run_mutants(args.max_children, patterns)
    wall = time.monotonic() - started
    if run.returncode != 0:
        print(f"mutate: mutmut run failed (exit {run.returncode}) after {wall:.0f} s", file=sys.stderr)
        return 1
    found = verdicts(patterns)
    diffs: dict[str, str] = {}
    status = report(found, wall, args.fail_under, diffs)
    if args.markdown and found:
        if require_clean(MEASURED_PATHS, "mutation scores") != commit:
            print(f"mutate: HEAD moved from {commit} during the run; nothing written", file=sys.stderr)
            return 2
        write_scores(args.markdown, found, diffs, modules, items, patterns, commit, date)
    return status


def report_only(
    markdown: Path | None,
    items: list[str],
    patterns: list[str],
    commit: str | None,
    modules: list[str],
    fail_under: float | None,
    write_diffs: bool = True,
) -> int:
    """The last run's results, from build/mutmut/ (its run.json names the commit and the files run)."""
    if not (STAGE / "mutants").is_dir():
        print(f"mutate: no run to report: {STAGE}/mutants is missing", file=sys.stderr)
        return 2
    record_path = STAGE / RUN_RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if record.get("dirty") and markdown:
        print(
            f"mutate: the last run measured uncommitted changes ({', '.join(record['dirty'][:5])}): its scores are "
            "of no commit; nothing written",
            file=sys.stderr,
        )
        return 2
    commit = commit or record.get("commit") or ""
    if not commit and markdown:
        print("mutate: the last run recorded no commit (run.json): give it with --commit", file=sys.stderr)
        return 2
    items = items or list(record.get("items", []))
    patterns = patterns or list(record.get("patterns", []))
    date = record.get("date") or datetime.datetime.fromtimestamp(
        (STAGE / "src").lstat().st_mtime, datetime.UTC
    ).strftime("%Y-%m-%d")
    found = verdicts(patterns)
    if not (items and all(":" in item for item in items)):
        found = measured_only(found)  # whole files: only those tested to the end
    diffs: dict[str, str] = {}
    status = report(found, 0.0, fail_under, diffs, write_diffs)
    if markdown and found:
        write_scores(markdown, found, diffs, modules, items, patterns, commit, date)
    return status


if __name__ == "__main__":
    sys.exit(main())
