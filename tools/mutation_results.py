"""Reading for ``tools/mutate.py``: which files mutmut mutates (``[tool.mutmut] only_mutate``), the mutant-name
globs of ``--only`` items, and mutmut's verdicts counted by file or by item. Pure functions of their inputs, except
:func:`mutmut_config`, which reads pyproject.toml.

A mutant is named ``MODULE.x_FUNCTION__mutmut_N`` (a function) or ``MODULE.xǁCLASSǁMETHOD__mutmut_N`` (a
method), ``MODULE`` dotted from the package: ``annotation_reconciler.portal.deletion.x_f__mutmut_3``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "annotation_reconciler"
SRC_PREFIX = f"src/{PACKAGE}/"


class UsageError(Exception):
    """Bad arguments or configuration: the message says what to fix."""


#: The verdicts that count as killed: a test failed, or mypy rejected the mutant (``make test`` runs ``make lint``,
#: mypy strict, before any test; tools/mutmut_typecheck.py).
BY_MYPY = "caught by type check"
KILLED = ("killed", BY_MYPY)


def killed(counts: Counter[str]) -> int:
    """How many of these verdicts count as killed."""
    return sum(counts[s] for s in KILLED)


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


def parse_verdicts(listing: str, patterns: list[str]) -> dict[str, str]:
    """mutant name -> verdict from ``mutmut results --all true``'s output (``NAME: VERDICT`` lines), for the
    mutants the patterns select (all if none)."""
    found = {}
    for line in listing.splitlines():
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


def counts_by_item(found: dict[str, str], items: list[str], patterns: list[str]) -> dict[str, Counter[str]]:
    """For a run of ``FILE:GLOB`` items: each item's verdict counts (a mutant counts under the first item whose
    pattern matches it). An item with a mutant not checked (a run stopped or still going) is left out."""
    by_item: dict[str, Counter[str]] = {}
    for name, status in found.items():
        item = next((i for i, p in zip(items, patterns, strict=True) if fnmatch.fnmatch(name, p)), None)
        if item is not None:
            by_item.setdefault(item, Counter())[status] += 1
    return {item: c for item, c in by_item.items() if not c["not checked"]}


def measured_only(found: dict[str, str]) -> dict[str, str]:
    """The mutants of the files this run tested to the end: a file with a mutant "not checked" was not run, or not
    to the end (a run stopped or still going), and gets no row."""
    unfinished = {module_file(n) for n, s in found.items() if s == "not checked"}
    return {n: s for n, s in found.items() if module_file(n) not in unfinished}
