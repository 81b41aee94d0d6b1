"""Names shared with the stack and the operators (environment variables, metric names, the namespace, actions) are
spelled in ``annotation_reconciler/names.py`` only: the handlers, the settings, ``infra/``, the benchmarks and the
tools import them (issue 31)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from annotation_reconciler import names
from annotation_reconciler.settings import KNOWN_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lambdas" / "annotation_reconciler"
SHARED = {
    *names.names_of(names.Env),
    *names.names_of(names.Powertools),
    *names.names_of(names.Metric),
    names.NAMESPACE,
}


#: Strings equal to a shared name that are another thing of the same spelling.
NOT_SHARED = {("infra/app.py", "AnnotationReconciler"): "the default CloudFormation stack name, not the namespace"}


def _exempt(tree: ast.AST) -> set[int]:
    """Docstrings, and the class names of ``__all__`` (``InventoryStale`` is an error as well as a metric)."""
    found = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            found |= {id(n) for n in ast.walk(node.value) if isinstance(n, ast.Constant)}
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


#: A shared name as a word of a string: a message that names a setting takes it from names.py as well.
SPELLED = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SHARED), key=len, reverse=True)) + r")\b")


def spelled_outside_names(folders: list[Path], root: Path = ROOT) -> list[str]:
    """Every shared name written in a string literal (not a docstring), alone or in a message, outside names.py."""
    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if path == PACKAGE / "names.py":
                continue
            tree = ast.parse(path.read_text())
            exempt = _exempt(tree)
            where = path.relative_to(root).as_posix()
            out += [
                f"{where}:{node.lineno}: {name}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt
                for name in SPELLED.findall(node.value)
                if (where, name) not in NOT_SHARED
            ]
    return sorted(out, key=lambda found: (found.split(":")[0], int(found.split(":")[1])))


def test_every_shared_name_is_spelled_in_names_py_only() -> None:
    assert spelled_outside_names([PACKAGE, ROOT / "infra", ROOT / "bench", ROOT / "tools"]) == []


def test_the_names_are_distinct_and_the_settings_know_every_variable() -> None:
    for kind in (names.Env, names.Powertools, names.Metric, names.Action):
        spelled = names.names_of(kind)
        assert spelled and len(spelled) == len(set(spelled)), kind
    assert set(names.names_of(names.Env)) == KNOWN_VARIABLES
    assert all(v.startswith("RECONCILER_") for v in names.names_of(names.Env))
    assert all(v.startswith("POWERTOOLS_") for v in names.names_of(names.Powertools))


def test_the_check_finds_a_name_spelled_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "planted.py").write_text(
        '''"""A docstring may say RECONCILER_DRY_RUN."""\n__all__ = ["InventoryStale"]\n'''
        'metric = "AnnotationsPurged"\nenv = {"RECONCILER_DRY_RUN": "true"}\n'
        'problem = "RECONCILER_GRACE_PERIOD_HOURS=-1 is negative"\nfine = "RECONCILER_DRY_RUNS"\n'
    )
    assert spelled_outside_names([tmp_path], root=tmp_path) == [
        "planted.py:3: AnnotationsPurged",
        "planted.py:4: RECONCILER_DRY_RUN",
        "planted.py:5: RECONCILER_GRACE_PERIOD_HOURS",
    ]
