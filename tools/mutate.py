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
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.docblock import (
    DirtyTree,
    changed_since,
    dirty_paths,
    head_commit,
    read_block,
    require_clean,
    short,
    write_block,
)

from annotation_reconciler.names import Env

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "mutmut"
PACKAGE = "annotation_reconciler"
SRC_PREFIX = f"src/{PACKAGE}/"
# mutmut's names for the verdicts (mutmut results); "killed" alone counts as killed.
ORDER = ("killed", "survived", "timeout", "no tests", "suspicious", "segfault", "skipped", "not checked")
#: The table's columns of counts; every other verdict is counted under "other".
COUNTED = ("killed", "survived", "timeout", "no tests")
SCORES_BLOCK = "mutation-scores"
FUNCTIONS_BLOCK = "mutation-functions"
SURVIVORS_FILE = "MUTATION_SURVIVORS.md"
#: The code a score is of: --markdown refuses while these differ from HEAD.
MEASURED_PATHS = ("lambdas", "tests")
RUN_RECORD = "run.json"
SURVIVORS_HEADER = (
    "# Mutants not killed\n\nWritten by `make mutate` (`tools/mutate.py --markdown RELIABILITY.md`), one section per "
    "file, each from the run that measured it (its commit and date); RELIABILITY.md §5 explains them. Do not edit by "
    "hand: the next run over a file replaces its section.\n"
)


class UsageError(Exception):
    """Bad arguments or configuration: the message says what to fix."""


def mutmut_config() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    try:
        config: dict[str, object] = data["tool"]["mutmut"]
    except KeyError:
        raise UsageError("pyproject.toml has no [tool.mutmut] section") from None
    return config


def modules_of(config: dict[str, object]) -> list[str]:
    """The files to mutate, relative to the package (``lifecycle.py``, ``portal/deletion.py``…)."""
    only = config.get("only_mutate")
    if not isinstance(only, list) or not only:
        raise UsageError("[tool.mutmut] only_mutate must list the files to mutate")
    modules = []
    for path in only:
        if not isinstance(path, str) or not path.startswith(SRC_PREFIX) or not path.endswith(".py"):
            raise UsageError(f"[tool.mutmut] only_mutate: {path!r} must be a file {SRC_PREFIX}….py")
        modules.append(path.removeprefix(SRC_PREFIX))
    return modules


def name_patterns(only: list[str], modules: list[str]) -> list[str]:
    """mutmut mutant-name globs for ``--only`` items (``lifecycle.py`` or ``lifecycle.py:plan_*``)."""
    patterns = []
    for item in only:
        module, _, function = item.partition(":")
        module = module.removeprefix(SRC_PREFIX).removeprefix(f"lambdas/{PACKAGE}/").removeprefix(f"{PACKAGE}/")
        if module not in modules:
            raise UsageError(f"--only {item!r}: {module!r} is not one of the mutated files: {' '.join(modules)}")
        dotted = f"{PACKAGE}.{module.removesuffix('.py').replace('/', '.')}"
        # a function is x_NAME, a method xǁCLASSǁNAME: "x*" covers both
        patterns.append(f"{dotted}.x*{function}__mutmut_*" if function else f"{dotted}.*")
    return patterns


def stage() -> None:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    (STAGE / "src").symlink_to(ROOT / "lambdas", target_is_directory=True)
    (STAGE / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    (STAGE / "bench").symlink_to(ROOT / "bench", target_is_directory=True)  # tests/unit/test_bench_layout.py
    (STAGE / "infra").symlink_to(ROOT / "infra", target_is_directory=True)  # tests/unit/test_settings.py
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


def verdicts(patterns: list[str]) -> dict[str, str]:
    """mutant name -> verdict, for the mutants the patterns select (all if none)."""
    out = mutmut("results", "--all", "true", capture=True)
    if out.returncode != 0:
        raise RuntimeError(f"mutmut results failed: {out.stderr.strip()}")
    found = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().partition(": ")
        if sep and name.startswith(f"{PACKAGE}.") and (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)):
            found[name] = status
    return found


def module_file(mutant: str) -> str:
    """The file (relative to the package) of a mutant named ``MODULE.x_FUNCTION__mutmut_N`` or
    ``MODULE.xǁCLASSǁMETHOD__mutmut_N``: ``annotation_reconciler.portal.deletion.x_f__mutmut_3`` ->
    ``portal/deletion.py``."""
    parts = mutant.split(".")
    module = next(parts[:i] for i in range(len(parts) - 1, 0, -1) if parts[i].startswith(("x_", "xǁ")))
    return "/".join(module[1:]) + ".py"


def counts_by_file(found: dict[str, str]) -> dict[str, Counter[str]]:
    by_file: dict[str, Counter[str]] = {}
    for name, status in found.items():
        by_file.setdefault(module_file(name), Counter())[status] += 1
    return by_file


@dataclass(frozen=True)
class ScoreRow:
    """One file's mutation score, as measured by one run at one commit."""

    module: str
    mutants: int
    killed: int
    survived: int
    timeout: int
    no_tests: int
    other: int
    commit: str
    date: str

    @classmethod
    def of(cls, module: str, counts: Counter[str], commit: str, date: str) -> ScoreRow:
        mutants = sum(counts.values())
        known = {s: counts[s] for s in COUNTED}
        return cls(
            module,
            mutants,
            known["killed"],
            known["survived"],
            known["timeout"],
            known["no tests"],
            mutants - sum(known.values()),
            short(commit),
            date,
        )

    @property
    def score(self) -> float:
        return 100 * self.killed / self.mutants if self.mutants else 0.0


COLUMNS = (
    "file",
    "mutants",
    "killed",
    "survived",
    "timeout",
    "no tests",
    "other",
    "score",
    "commit",
    "date",
    "file changed since",
)


def parse_rows(block: str | None) -> dict[str, ScoreRow]:
    """The rows of a table :func:`render_table` wrote (files never measured have none)."""
    rows: dict[str, ScoreRow] = {}
    for line in (block or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) or not cells[0].startswith("`") or not cells[1].isdigit():
            continue
        module = cells[0].strip("`")
        numbers = [int(c) for c in cells[1:7]]
        rows[module] = ScoreRow(module, *numbers, commit=cells[8].strip("`"), date=cells[9])
    return rows


def merge_rows(old: dict[str, ScoreRow], new: dict[str, ScoreRow]) -> dict[str, ScoreRow]:
    """The new run's rows replace those of the same files; every other file keeps its row and its commit."""
    return {**old, **new}


def render_table(rows: dict[str, ScoreRow], modules: list[str], changed: Callable[[str, str], bool | None]) -> str:
    """The scores table: one row per file of only_mutate (those never measured say so), then the files measured
    once that only_mutate no longer lists. ``changed(commit, file)`` says whether the file differs at HEAD."""
    header = "| " + " | ".join(COLUMNS) + " |"
    lines = [header, "|---|" + "---:|" * 7 + "---|---|---|"]
    for module in [*modules, *sorted(set(rows) - set(modules))]:
        row = rows.get(module)
        if row is None:
            lines.append(f"| `{module}` | not measured | | | | | | | | | |")
            continue
        moved = changed(row.commit, f"lambdas/{PACKAGE}/{module}")
        since = {True: "**yes**: re-run", False: "no", None: "unknown commit"}[moved]
        if module not in modules:
            since += " (no longer in only_mutate)"
        lines.append(
            f"| `{module}` | {row.mutants} | {row.killed} | {row.survived} | {row.timeout} | {row.no_tests} | "
            f"{row.other} | {row.score:.1f} % | `{row.commit}` | {row.date} | {since} |"
        )
    measured = [r for r in rows.values() if r.module in modules]
    mutants = sum(r.mutants for r in measured)
    killed = sum(r.killed for r in measured)
    score = f"{100 * killed / mutants:.1f} %" if mutants else "—"
    lines.append(
        f"| **all measured files of only_mutate** ({len(measured)} of {len(modules)}) | {mutants} | {killed} | "
        f"{sum(r.survived for r in measured)} | {sum(r.timeout for r in measured)} | "
        f"{sum(r.no_tests for r in measured)} | {sum(r.other for r in measured)} | {score} | | | |"
    )
    return "\n".join(lines)


def survivors_section(module: str, unkilled: list[tuple[str, str, str]], commit: str, date: str) -> str:
    """One file's mutants not killed (name, verdict, diff), for MUTATION_SURVIVORS.md."""
    lines = [f"### `{module}` at `{short(commit)}` ({date}): {len(unkilled)} not killed", ""]
    for name, status, diff in unkilled:
        lines += [f"- **{status}** `{name}`", "", "  ```diff"]
        lines += [f"  {line}" if line else "" for line in diff.strip("\n").splitlines()]
        lines += ["  ```", ""]
    return "\n".join(lines)


def write_documents(
    markdown: Path,
    found: dict[str, str],
    diffs: dict[str, str],
    modules: list[str],
    commit: str,
    date: str,
) -> None:
    """The scores table of ``markdown`` and the survivors file next to it, for the files of this run only."""
    new = {m: ScoreRow.of(m, c, commit, date) for m, c in counts_by_file(found).items()}
    text = markdown.read_text() if markdown.exists() else ""
    rows = merge_rows(parse_rows(read_block(text, SCORES_BLOCK)), new)
    write_block(markdown, SCORES_BLOCK, render_table(rows, modules, lambda c, f: changed_since(c, f, ROOT)))
    survivors = markdown.parent / SURVIVORS_FILE
    if not survivors.exists():
        survivors.write_text(SURVIVORS_HEADER)
    for module in sorted(new):
        unkilled = sorted(
            (n, s, diffs.get(n, "")) for n, s in found.items() if module_file(n) == module and s != "killed"
        )
        write_block(survivors, f"survivors {module}", survivors_section(module, unkilled, commit, date))


def counts_by_item(found: dict[str, str], items: list[str], patterns: list[str]) -> dict[str, Counter[str]]:
    """For a run of ``FILE:GLOB`` items: each item's verdict counts (a mutant counts under the first item whose
    pattern matches it). An item with a mutant not checked (a run stopped or still going) is left out."""
    by_item: dict[str, Counter[str]] = {}
    for name, status in found.items():
        item = next((i for i, p in zip(items, patterns, strict=True) if fnmatch.fnmatch(name, p)), None)
        if item is not None:
            by_item.setdefault(item, Counter())[status] += 1
    return {item: c for item, c in by_item.items() if not c["not checked"]}


def render_function_table(rows: dict[str, ScoreRow], changed: Callable[[str, str], bool | None]) -> str:
    """The scores of the function runs (``FILE:GLOB``), one row per item, with the commit of the run that measured
    it; ``changed(commit, file)`` says whether the item's file differs at HEAD."""
    header = "| functions | " + " | ".join(COLUMNS[1:]) + " |"
    lines = [header, "|---|" + "---:|" * 7 + "---|---|---|"]
    for item in sorted(rows):
        row = rows[item]
        moved = changed(row.commit, f"lambdas/{PACKAGE}/{item.partition(':')[0]}")
        since = {True: "**yes**: re-run", False: "no", None: "unknown commit"}[moved]
        lines.append(
            f"| `{item}` | {row.mutants} | {row.killed} | {row.survived} | {row.timeout} | {row.no_tests} | "
            f"{row.other} | {row.score:.1f} % | `{row.commit}` | {row.date} | {since} |"
        )
    mutants, killed = sum(r.mutants for r in rows.values()), sum(r.killed for r in rows.values())
    score = f"{100 * killed / mutants:.1f} %" if mutants else "—"
    lines.append(f"| **all function runs** ({len(rows)}) | {mutants} | {killed} | | | | | {score} | | | |")
    return "\n".join(lines)


def write_function_documents(
    markdown: Path,
    by_item: dict[str, Counter[str]],
    found: dict[str, str],
    patterns: dict[str, str],
    diffs: dict[str, str],
    commit: str,
    date: str,
) -> None:
    """The function runs' table of ``markdown`` (block ``mutation-functions``; a run replaces the rows of its items
    only) and each item's survivors in the survivors file."""
    new = {item: ScoreRow.of(item, c, commit, date) for item, c in by_item.items()}
    text = markdown.read_text() if markdown.exists() else ""
    rows = merge_rows(parse_rows(read_block(text, FUNCTIONS_BLOCK)), new)
    write_block(markdown, FUNCTIONS_BLOCK, render_function_table(rows, lambda c, f: changed_since(c, f, ROOT)))
    survivors = markdown.parent / SURVIVORS_FILE
    if not survivors.exists():
        survivors.write_text(SURVIVORS_HEADER)
    for item in sorted(new):
        unkilled = sorted(
            (n, s, diffs.get(n, "")) for n, s in found.items() if fnmatch.fnmatch(n, patterns[item]) and s != "killed"
        )
        write_block(survivors, f"survivors {item}", survivors_section(item, unkilled, commit, date))


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
        print(f"| {module} | {n} | {cells} | {100 * c['killed'] / n:.1f} |")
    cells = " | ".join(str(counts[s]) for s in ORDER if counts[s])
    score = 100 * counts["killed"] / total
    print(f"| **all** | {total} | {cells} | **{score:.1f}** |")
    others = sorted(set(counts) - set(ORDER))
    if others:
        print(f"other verdicts: {', '.join(f'{s} {counts[s]}' for s in others)}")
    print()
    wall = f" ; wall time {wall_s / 60:.1f} min" if wall_s else ""
    print(f"score: {counts['killed']} killed / {total} mutants = {score:.1f} %{wall}")

    # a mutant not checked (a run stopped, or still going) has no verdict to show
    unkilled = sorted(name for name, status in found.items() if status not in ("killed", "not checked"))
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


def measured_only(found: dict[str, str]) -> dict[str, str]:
    """The mutants of the files this run tested to the end: a file with a mutant "not checked" was not run, or not
    to the end (a run stopped or still going), and gets no row."""
    unfinished = {module_file(n) for n, s in found.items() if s == "not checked"}
    return {n: s for n, s in found.items() if module_file(n) not in unfinished}


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
    commit = ""
    if args.markdown:
        try:
            commit = require_clean(MEASURED_PATHS, f"mutation scores written into {args.markdown}")
        except DirtyTree as err:
            print(f"mutate: {err}", file=sys.stderr)
            return 2

    # imported only here: nothing of the package is loaded in this process before the command line is checked
    sys.path.insert(0, str(ROOT / "lambdas"))
    from annotation_reconciler.local.postgres import LocalPostgres

    stage()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    record = run_record(items, patterns, date)
    (STAGE / RUN_RECORD).write_text(json.dumps(record))
    # the server's files under build/mutmut/, not the system temp dir, where others clean up
    tempfile.tempdir = str(STAGE)
    started = time.monotonic()
    with LocalPostgres() as server:
        env = {
            **os.environ,
            Env.TEST_DATABASE_URL: server.url,
            Env.TEST_WORKER_SLOTS: str(STAGE / "worker-slots"),
        }
        print(f"mutate: mutmut run {' '.join(patterns) or '(all of only_mutate)'} in {STAGE.relative_to(ROOT)}")
        run = mutmut("run", "--max-children", str(args.max_children), *patterns, env=env)
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


def write_scores(
    markdown: Path,
    found: dict[str, str],
    diffs: dict[str, str],
    modules: list[str],
    items: list[str],
    patterns: list[str],
    commit: str,
    date: str,
) -> None:
    """Whole files' scores into the table of files; a run of ``FILE:GLOB`` items into the table of functions."""
    if items and all(":" in item for item in items):
        by_item = counts_by_item(found, items, patterns)
        write_function_documents(markdown, by_item, found, dict(zip(items, patterns, strict=True)), diffs, commit, date)
        print(f"mutate: wrote the scores of {len(by_item)} function globs at {short(commit)} into {markdown}")
        return
    write_documents(markdown, measured_only(found), diffs, modules, commit, date)
    files = len(counts_by_file(measured_only(found)))
    print(f"mutate: wrote the scores of {files} files at {short(commit)} into {markdown}")


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
