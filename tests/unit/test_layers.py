"""Imports point down only: entry points -> service -> adapters (I/O) -> rules (pure). A module imports modules of
its own layer or of a layer below it, never above (README, "Layout"); an import needed only by the type checker
(``if TYPE_CHECKING:``) does not count (issue 31)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import annotation_reconciler

PACKAGE = Path(annotation_reconciler.__file__).parent
#: Each module or folder of the package (the longest name that matches decides) and its layer, lowest first.
LAYERS = ("rules", "adapters", "service", "entry")
LAYER_OF = {
    # rules: pure, no I/O
    "rules": "rules",
    "fanout": "rules",
    "errors": "rules",
    "names": "rules",
    "settings": "rules",
    "db.urls": "rules",
    "db.arrays": "rules",
    # adapters: the database, S3 and AWS
    "aws": "adapters",
    "db": "adapters",
    "storage": "adapters",
    "ledger": "adapters",
    "portal": "adapters",
    # service: the operations
    "service": "service",
    "db_import": "service",
    # entry points
    "handlers": "entry",
    "cli": "entry",
    "logs": "entry",
    "local": "entry",
}


def name_of(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYER_OF:
            return LAYER_OF[".".join(parts[:n])]
    return None


def runtime_imports(tree: ast.Module) -> set[str]:
    """The package modules a module imports at run time (not under ``if TYPE_CHECKING:``)."""
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("annotation_reconciler"):
            if node.module == "annotation_reconciler":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.removeprefix("annotation_reconciler."))
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("annotation_reconciler.")
                for a in node.names
                if a.name.startswith("annotation_reconciler.")
            }
    return found


def upward_imports(package: Path) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        module = name_of(path, package)
        if module == "" or "migrations" in module.split("."):
            continue
        own = layer_of(module)
        if own is None:
            out.append(f"{module}: in no layer (add it to LAYER_OF)")
            continue
        for target in sorted(runtime_imports(ast.parse(path.read_text()))):
            theirs = layer_of(target)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(own):
                out.append(f"{module} ({own}) imports {target} ({theirs})")
    return out


def test_every_import_points_down() -> None:
    assert upward_imports(PACKAGE) == []


def test_the_check_finds_an_upward_import_and_a_module_in_no_layer(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "paths.py").write_text("from annotation_reconciler.ledger import quarantines\n")
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "x.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from annotation_reconciler.service import scan\n"
    )
    (tmp_path / "stray.py").write_text("")
    assert upward_imports(tmp_path) == [
        "rules.paths (rules) imports ledger (adapters)",
        "stray: in no layer (add it to LAYER_OF)",
    ]


def test_the_top_level_of_the_package_holds_at_most_twelve_modules() -> None:
    """The layers are folders (rules/, service/, the adapters, the entry points); the top level keeps only what
    every layer shares (issue 31)."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_no_class_of_the_package_is_a_mixin_and_the_reconciler_is_a_facade() -> None:
    """One shape for the service (issue 31): each operation is a module of functions taking the frozen Context;
    Reconciler inherits nothing and only hands its context on."""
    from annotation_reconciler.service.reconciler import Reconciler

    mixins = [
        f"{path.relative_to(PACKAGE)}: {node.name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and (node.name.endswith("Mixin") or node.name.endswith("Core"))
    ]
    assert mixins == []
    assert Reconciler.__mro__ == (Reconciler, object)


#: A Reconciler's method replaced (its context may be), or a function of a service module patched by name.
SERVICE_PATCH = re.compile(
    r"setattr\((\w+\.)*reconciler, |reconciler\.\w+ = (?!dataclasses)|setattr\(\"annotation_reconciler\.service"
)


def test_no_test_patches_the_service() -> None:
    """Tests replace adapters (the storage, the ledger's and the portal's SQL), never a Reconciler's methods nor the
    functions of a service module: what the service does between the adapters is what they test."""
    tests = PACKAGE.parents[1] / "tests"
    patched = [
        f"{path.relative_to(tests)}:{n}"
        for path in sorted(tests.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SERVICE_PATCH.search(line)
    ]
    assert patched == []


def test_sql_is_written_in_the_adapters_only() -> None:
    """The service and the rules hold no SQL text: the portal's tables are read and written in portal/, the ledger
    and the audit in ledger/ (issue 31)."""
    with_sql = [
        f"{path.relative_to(PACKAGE)}"
        for folder in ("service", "rules")
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module == "sqlalchemy"
        and any(a.name == "text" for a in node.names)
    ]
    assert with_sql == []


def test_the_readme_layout_names_every_folder_and_module_and_none_that_is_gone() -> None:
    """README's "Layout" matches the tree: every folder of the package and every module of its top level, rules/
    and service/ is named there, and every ``x.py`` it names exists (issue 31)."""
    root = PACKAGE.parents[1]
    readme = (root / "README.md").read_text()
    layout = readme[readme.index("## Layout\n") : readme.index("### Glossary")]
    wanted = {f"`{p.name}/`" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    wanted |= {f"`{p.name}`" for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    wanted |= {p.name for folder in ("rules", "service") for p in (PACKAGE / folder).glob("*.py")} - {"__init__.py"}
    assert sorted(w for w in wanted if w not in layout) == []
    existing = {
        p.name
        for folder in (PACKAGE, root / "infra", root / "tools", root / "bench", root / "tests")
        for p in folder.rglob("*.py")
    }
    assert sorted(set(re.findall(r"\b\w+\.py\b", layout)) - existing) == []


def test_the_service_results_have_one_home_and_one_suffix() -> None:
    """Every operation of the service returns a ``…Result`` defined in service/results.py; no type is an
    "Outcome" beside a "Result" (issue 31)."""
    classes = [
        (path.relative_to(PACKAGE).as_posix(), node.name)
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]
    assert [c for c in classes if c[1].endswith("Outcome")] == []
    assert [c for c in classes if c[0].startswith("service/") and c[1].endswith("Result")] == [
        c for c in classes if c[0] == "service/results.py" and c[1].endswith("Result")
    ]
