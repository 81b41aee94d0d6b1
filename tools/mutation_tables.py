"""Writing for ``tools/mutate.py --markdown``: the scores tables of RELIABILITY.md (whole files in the block
``mutation-scores``, ``FILE:GLOB`` items in ``mutation-functions``) and the survivors in MUTATION_SURVIVORS.md.

Each table row is a :class:`ScoreRow` with the commit and date of the run that measured it; a run replaces the
rows of its own files or items only (:func:`merge_rows`), and :func:`parse_rows` reads back what
:func:`render_table` wrote.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.docblock import changed_since, drop_block, is_ancestor, read_block, short, write_block
from tools.mutation_results import (
    BY_MYPY,
    KILLED,
    PACKAGE,
    ROOT,
    counts_by_file,
    counts_by_item,
    killed,
    measured_only,
    module_file,
)

#: The table's columns of counts; every other verdict is counted under "other".
COUNTED = ("killed", "survived", "timeout", "no tests")
SCORES_BLOCK = "mutation-scores"
FUNCTIONS_BLOCK = "mutation-functions"
SURVIVORS_FILE = "MUTATION_SURVIVORS.md"
SURVIVORS_HEADER = (
    "# Mutants not killed\n\nWritten by `make mutate` (`tools/mutate.py --markdown RELIABILITY.md`), one section per "
    "file, each from the run that measured it (its commit and date); RELIABILITY.md §5 explains them. Do not edit by "
    "hand: the next run over a file replaces its section.\n"
)


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
        known = {s: counts[s] for s in COUNTED} | {"killed": killed(counts)}
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


def survivors_section(module: str, verdicts: dict[str, str], diffs: dict[str, str], commit: str, date: str) -> str:
    """One file's (or function run's) mutants not killed, each with its verdict and diff, for MUTATION_SURVIVORS.md,
    and how many of its killed mutants mypy rejected (no test ran for them). ``verdicts``: its mutants only."""
    unkilled = sorted((n, s, diffs.get(n, "")) for n, s in verdicts.items() if s not in KILLED)
    by_mypy = sum(1 for s in verdicts.values() if s == BY_MYPY)
    caught = f" ({by_mypy} of the killed rejected by mypy, no test run)" if by_mypy else ""
    lines = [f"### `{module}` at `{short(commit)}` ({date}): {len(unkilled)} not killed{caught}", ""]
    for name, status, diff in unkilled:
        lines += [f"- **{status}** `{name}`", "", "  ```diff"]
        lines += [f"  {line}" if line else "" for line in diff.strip("\n").splitlines()]
        lines += ["  ```", ""]
    return "\n".join(lines)


def superseded(item: str, row: ScoreRow, files: dict[str, ScoreRow], later: Callable[[str, str], bool]) -> bool:
    """Is the function run ``item`` (``FILE:GLOB``, measured as ``row``) measured again by a whole-file run? Its
    file, or the file it was moved to (an item written before the package's folders: ``evidence.py`` is
    ``service/evidence.py``), has a row measured at the same commit or a later one (``later(old, new)``)."""
    file = item.partition(":")[0]
    return any((f == file or f.endswith("/" + file)) and later(row.commit, whole.commit) for f, whole in files.items())


def drop_superseded_functions(markdown: Path, later: Callable[[str, str], bool]) -> list[str]:
    """Remove the function runs that the whole-file rows of ``markdown`` measured again (their rows and their
    survivors' sections); returns the items removed."""
    text = markdown.read_text() if markdown.exists() else ""
    block = read_block(text, FUNCTIONS_BLOCK)
    if block is None:
        return []
    files = parse_rows(read_block(text, SCORES_BLOCK))
    rows = parse_rows(block)
    gone = sorted(item for item, row in rows.items() if superseded(item, row, files, later))
    if not gone:
        return []
    kept = {item: row for item, row in rows.items() if item not in gone}
    write_block(markdown, FUNCTIONS_BLOCK, render_function_table(kept, lambda c, f: changed_since(c, f, ROOT)))
    survivors = markdown.parent / SURVIVORS_FILE
    if survivors.exists():
        survived = survivors.read_text()
        for item in gone:
            survived = drop_block(survived, f"survivors {item}")
        survivors.write_text(survived)
    return gone


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
        mine = {n: s for n, s in found.items() if module_file(n) == module}
        write_block(survivors, f"survivors {module}", survivors_section(module, mine, diffs, commit, date))
    dropped = drop_superseded_functions(markdown, lambda old, new: is_ancestor(old, new, ROOT))
    if dropped:
        print(f"mutate: the whole-file rows measured again {len(dropped)} function runs, removed: {' '.join(dropped)}")


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
        mine = {n: s for n, s in found.items() if fnmatch.fnmatch(n, patterns[item])}
        write_block(survivors, f"survivors {item}", survivors_section(item, mine, diffs, commit, date))


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
