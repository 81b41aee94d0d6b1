"""mypy over mutmut's mutated copy, for mutmut's ``type_check_command``: a mutant mypy rejects is killed without
running a test, since ``make test`` runs ``make lint`` (mypy, strict) first and fails on it.

mutmut runs this in ``build/mutmut/mutants/`` (``python tools/mutmut_typecheck.py mypy``: the word ``mypy`` tells
mutmut to read mypy's JSON lines) and charges each error to the mutant whose function holds its line. Our
``[tool.mypy]`` settings apply, with the package found under ``src/`` and two error codes left out that only the
mutated copy's layout produces, never a mutant: ``no-redef`` (every copy of an ``__init__`` annotates the same
attributes again) and ``unused-ignore`` (mutmut's own ``# type: ignore`` lines).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

#: Errors of the mutated copy's layout, not of any mutant.
LAYOUT_ERRORS = ("no-redef", "unused-ignore")
#: Settings of [tool.mypy] that name our checkout's paths; here the package is under src/.
PATH_SETTINGS = ("files", "mypy_path", "overrides")


def ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def mypy_ini(pyproject: dict[str, Any]) -> str:
    """A mypy.ini of ``[tool.mypy]`` (its per-module overrides included) for the mutated copy."""
    settings = pyproject.get("tool", {}).get("mypy", {})
    lines = ["[mypy]", "mypy_path = src", f"disable_error_code = {', '.join(LAYOUT_ERRORS)}"]
    lines += [f"{key} = {ini_value(value)}" for key, value in settings.items() if key not in PATH_SETTINGS]
    for override in settings.get("overrides", []):
        modules = override["module"]
        lines += ["", f"[mypy-{','.join(modules if isinstance(modules, list) else [modules])}]"]
        lines += [f"{key} = {ini_value(value)}" for key, value in override.items() if key != "module"]
    return "\n".join(lines) + "\n"


def main() -> int:
    from mypy import api

    here = Path.cwd()  # build/mutmut/mutants
    config = here.parent / "mypy-mutants.ini"
    config.write_text(mypy_ini(tomllib.loads((here / "pyproject.toml").read_text())))
    cache = str(here.parent / "mypy-cache")
    package = "src/annotation_reconciler"
    out, err, _ = api.run(["--config-file", str(config), "--cache-dir", cache, "--output", "json", package])
    sys.stdout.write(out)
    sys.stderr.write(err)
    return 0  # mutmut reads the errors from the output; mypy's exit status only says there were some


if __name__ == "__main__":
    sys.exit(main())
