"""Results tables and figures: :class:`Section` (printed with rich, rendered as markdown), the context every
benchmark gets, number formats and the machine's description."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from annotation_reconciler.local.databases import DatabaseFactory

# --- tables -------------------------------------------------------------------------------------------------------


@dataclass
class Section:
    """One table of results: printed with rich as it is made, rendered as markdown for BENCHMARKS.md."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def numeric(self, index: int) -> bool:
        """Right-align a column whose cells all start like a figure."""
        cells = [row[index] for row in self.rows if index < len(row)]
        return bool(cells) and all(c[:1].isdigit() or c[:1] in "—-+" for c in cells)

    def print(self, console: Console) -> None:
        table = Table(title=self.title, title_justify="left", show_lines=False)
        for i, column in enumerate(self.columns):
            table.add_column(column, justify="right" if self.numeric(i) else "left", overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)
        for note in self.notes:
            console.print(f"[dim]{note}")

    def markdown(self) -> str:
        def cell(value: str) -> str:
            return value.replace("|", "\\|")

        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---:" if self.numeric(i) else "---" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"{note}  " for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class BenchContext:
    """What run_all hands every benchmark: the database server, the sizes and the console."""

    factory: DatabaseFactory
    sizes: list[int]
    moto_sizes: list[int]
    console: Console = field(default_factory=lambda: Console(width=None if sys.stdout.isatty() else 200))
    sections: list[Section] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # headline figures for the targets table

    def emit(self, section: Section) -> Section:
        section.print(self.console)
        self.sections.append(section)
        return section


def fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def fmt_n(n: float) -> str:
    return f"{n:,.0f}"


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_sizes(raw: str) -> list[int]:
    """``1k,10k,100k,1M`` or ``1000,10000`` -> [1000, 10000, …]."""
    sizes = []
    for part in raw.split(","):
        part = part.strip().lower()
        if not part:
            continue
        factor = 1_000_000 if part.endswith("m") else 1000 if part.endswith("k") else 1
        sizes.append(int(float(part.rstrip("mk")) * factor))
    return sizes


def machine() -> dict[str, str]:
    """Cores, nproc, CPU model, memory and Python version of this machine."""
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": model,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "nproc": nproc,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
