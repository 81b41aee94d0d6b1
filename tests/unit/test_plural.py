"""Every count a command prints agrees with its noun: one helper (``plural.count``), used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import annotation_reconciler
from annotation_reconciler.rules.plural import count

#: the package the tests import (lambdas/annotation_reconciler, or make mutate's mutated copy of it)
PACKAGE = Path(annotation_reconciler.__file__).resolve().parent
#: What the commands print (the CLI, the cleanup script, the reasons status shows, the demo).
PRINTING = [
    *sorted(PACKAGE.glob("cli/*.py")),
    PACKAGE / "service" / "cleanup.py",
    PACKAGE / "service" / "results.py",
    PACKAGE / "ledger" / "status.py",
    PACKAGE / "ledger" / "waiting.py",
    PACKAGE / "rules" / "lifecycle.py",
    PACKAGE / "service" / "restore.py",
    *sorted(PACKAGE.glob("local/demo*.py")),
]
NOUNS = (
    "annotations|prefixes|keys|files|rows|datasets|spacings|objects|times|deletions|shards|notifications|runs|"
    "requests|records|messages"
)
#: a placeholder (not a count(...) call) followed, within three words, by a plural noun: "{n} annotations"
COUNTED = re.compile(r"\{(?!count\()[^{}]*\}\)?(?: [a-z/_-]+){0,3}? (?:" + NOUNS + r")\b")
#: placeholders that are not counts
NOT_COUNTS = {
    "{verb} stale annotations",  # "removed stale annotations [ids]"
    "{dataset_id} has no held annotations",
    "{folder!r} still holds other objects",
    "{folder!r} holds other objects",
}


#: a log message's count before a plural noun ("%d annotations"): logs reach the commands' stderr
LOGGED = re.compile(r"%d(?: [a-z/_-]+){0,3}? (?:" + NOUNS + r")\b")


def test_count_agrees_in_number() -> None:
    assert [count(n, "annotation") for n in (0, 1, 2)] == ["0 annotations", "1 annotation", "2 annotations"]
    assert count(1, "prefix", "prefixes") == "1 prefix" and count(3, "prefix", "prefixes") == "3 prefixes"


def test_no_message_puts_a_count_before_a_plural_noun_by_hand() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{n}: {m.group(0)}"
        for path in PRINTING
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for m in COUNTED.finditer(line)
        if m.group(0) not in NOT_COUNTS
    ]
    assert found == [], "use plural.count for these: " + "; ".join(found)
    hedged = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in PRINTING
        for n, x in enumerate(p.read_text().splitlines(), 1)
        if "(s)" in x
    ]
    assert hedged == [], "a count says its noun in number, not 'time(s)': " + ", ".join(hedged)
    logged = [
        f"{p.relative_to(PACKAGE)}:{n}: {m.group(0)}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for n, x in enumerate(p.read_text().splitlines(), 1)
        for m in LOGGED.finditer(x)
    ]
    assert logged == [], "log messages print on the commands' stderr: use %s and plural.count for " + "; ".join(logged)
