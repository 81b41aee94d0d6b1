"""After a run of the reliability tests in one process, say how many faults were injected, by kind (the figures
of RELIABILITY.md). Under xdist each worker keeps its own count and nothing is printed."""

from __future__ import annotations

from typing import Any

from support.faults import INJECTED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not INJECTED:
        return
    terminalreporter.section("faults injected")
    for kind, count in sorted(INJECTED.items()):
        terminalreporter.write_line(f"{count:6d}  {kind}")
    terminalreporter.write_line(f"{sum(INJECTED.values()):6d}  in all")
