"""Figures written into the documents by the commands that measure them, never by hand.

Every generated part of README.md, BENCHMARKS.md and RELIABILITY.md sits between two markers,
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``, and names the commit it was measured at. This module holds
what the writers share: the markers (:func:`replace_block`), the commit (:func:`head_commit`), the refusal of a
tree whose measured code has uncommitted changes (:func:`require_clean`), and whether a file changed since the
commit a figure names (:func:`changed_since`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DirtyTree(Exception):
    """The files a figure is measured on have uncommitted changes: the figure would name a commit it is not of."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str | None:
    """What lies between the markers ``name`` (without them), or None when the text has no such block."""
    begin, end = markers(name)
    if begin not in text or end not in text.split(begin, 1)[1]:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0]


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the part between the markers ``name`` replaced by ``body``; the markers are appended at the
    end when missing. Everything outside the markers is kept byte for byte."""
    begin, end = markers(name)
    block = f"{begin}\n{body.strip(chr(10))}\n{end}"
    if read_block(text, name) is None:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    return before + block + after


def drop_block(text: str, name: str) -> str:
    """``text`` without the block ``name``, its markers and the blank lines around it (one kept between what was
    before and after it); unchanged when it has no such block."""
    begin, end = markers(name)
    if read_block(text, name) is None:
        return text
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1].lstrip("\n")
    before = before.rstrip("\n")
    if not before:
        return after
    return before + ("\n\n" + after if after else "\n")


def write_block(path: Path, name: str, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_block(text, name, body))


def _git(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def head_commit(root: Path = ROOT) -> str:
    out = _git("rev-parse", "HEAD", root=root)
    if out.returncode != 0:
        raise DirtyTree(f"not a git checkout ({out.stderr.strip()}): figures need the commit they were measured at")
    return out.stdout.strip()


def dirty_paths(paths: Iterable[str], root: Path = ROOT) -> list[str]:
    """Files under ``paths`` that differ from HEAD: modified, staged, deleted or untracked (ignored ones aside)."""
    out = _git("status", "--porcelain", "--untracked-files=all", "--", *paths, root=root)
    if out.returncode != 0:
        raise DirtyTree(f"git status failed: {out.stderr.strip()}")
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def require_clean(paths: Iterable[str], what: str, root: Path = ROOT) -> str:
    """HEAD's commit, or :class:`DirtyTree` naming the changed files when ``paths`` differ from it."""
    paths = list(paths)
    changed = dirty_paths(paths, root)
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise DirtyTree(
            f"{what} would be of no commit: {' '.join(p + '/' for p in paths)} hold uncommitted changes ({shown}). "
            "Commit or stash them first."
        )
    return head_commit(root)


def changed_since(commit: str, path: str, root: Path = ROOT) -> bool | None:
    """Whether ``path`` differs between ``commit`` and HEAD (None when the commit is unknown here)."""
    out = _git("diff", "--quiet", commit, "HEAD", "--", path, root=root)
    if out.returncode in (0, 1):
        return out.returncode == 1
    return None


def is_ancestor(older: str, newer: str, root: Path = ROOT) -> bool:
    """Is commit ``older`` an ancestor of ``newer``, or the same commit? (False when either is unknown here.)"""
    return _git("merge-base", "--is-ancestor", older, newer, root=root).returncode == 0


def short(commit: str) -> str:
    return commit[:10]
