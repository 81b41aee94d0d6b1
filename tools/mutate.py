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
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "mutmut"
PACKAGE = "annotation_reconciler"
SRC_PREFIX = f"src/{PACKAGE}/"
# mutmut's names for the verdicts (mutmut results); "killed" alone counts as killed.
ORDER = ("killed", "survived", "timeout", "no tests", "suspicious", "segfault", "skipped", "not checked")


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


def report(found: dict[str, str], wall_s: float, fail_under: float | None) -> int:
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
    print(f"score: {counts['killed']} killed / {total} mutants = {score:.1f} % ; wall time {wall_s / 60:.1f} min")

    unkilled = sorted(name for name, status in found.items() if status != "killed")
    diffs = []
    for name in unkilled:
        shown = mutmut("show", name, capture=True)
        diffs.append(shown.stdout if shown.returncode == 0 else f"# {name}: mutmut show failed: {shown.stderr}\n")
    (STAGE / "survivors.diff").write_text("\n".join(diffs))
    if unkilled:
        print()
        print(f"not killed ({len(unkilled)}; diffs in {STAGE.relative_to(ROOT)}/survivors.diff):")
        for name, diff in zip(unkilled, diffs, strict=True):
            changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
            print(f"  {found[name]:10} {name}")
            for line in changed:
                print(f"               {line.strip()[:150]}")
        print()
        print(f"one mutant: cd {STAGE.relative_to(ROOT)} && ../../.venv/bin/mutmut show NAME")
    if fail_under is not None and score < fail_under:
        print(f"mutate: score {score:.1f} % is under --fail-under {fail_under}", file=sys.stderr)
        return 1
    return 0


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
    args = parser.parse_args(argv)
    try:
        modules = modules_of(mutmut_config())
        patterns = name_patterns([i for item in args.only for i in item.replace(",", " ").split()], modules)
        if args.max_children < 1:
            raise UsageError("--max-children must be at least 1")
    except UsageError as err:
        print(f"mutate: {err}", file=sys.stderr)
        return 2

    # imported only here: nothing of the package is loaded in this process before the command line is checked
    sys.path.insert(0, str(ROOT / "lambdas"))
    from annotation_reconciler.local.postgres import LocalPostgres

    stage()
    # the server's files under build/mutmut/, not the system temp dir, where others clean up
    tempfile.tempdir = str(STAGE)
    started = time.monotonic()
    with LocalPostgres() as server:
        env = {
            **os.environ,
            "RECONCILER_TEST_DATABASE_URL": server.url,
            "RECONCILER_TEST_WORKER_SLOTS": str(STAGE / "worker-slots"),
        }
        print(f"mutate: mutmut run {' '.join(patterns) or '(all of only_mutate)'} in {STAGE.relative_to(ROOT)}")
        run = mutmut("run", "--max-children", str(args.max_children), *patterns, env=env)
    wall = time.monotonic() - started
    if run.returncode != 0:
        print(f"mutate: mutmut run failed (exit {run.returncode}) after {wall:.0f} s", file=sys.stderr)
        return 1
    return report(verdicts(patterns), wall, args.fail_under)


if __name__ == "__main__":
    sys.exit(main())
