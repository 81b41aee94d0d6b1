"""The benchmarks' own rules: modules import downwards only, no module of bench/ or tools/ is over 350 lines (issue
31), and the S3 double's latency overlaps like requests in flight (so that concurrency shows in measured wall
time)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from annotation_reconciler.storage import S3Storage

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
#: What each kind of bench module may import from bench/ (the benchmarks, then the shared parts): run_all and its
#: targets table read the benchmarks; bench_scan's tables (scan_report) are its own.
SHARED = {"baseline", "portal", "measure", "report", "s3double"}
BENCHMARKS = {p.stem for p in BENCH.glob("bench_*.py")}
ALLOWED = {
    "bench_scan": {"bench_inventory", "scan_report"},
    "run_all": BENCHMARKS | {"targets"},
    "targets": BENCHMARKS,
}
#: The most lines a module of bench/ or tools/ may have (issue 31).
MAX_LINES = 350


def bench_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "bench":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bench.")}
    return found


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.stem)
def test_bench_modules_import_downwards_only(path: Path) -> None:
    allowed = SHARED | ALLOWED.get(path.stem, set())
    if path.stem in SHARED:  # the shared parts import only each other, and never a benchmark
        allowed = SHARED - {path.stem}
    assert bench_imports(path) <= allowed, f"{path.name} imports {sorted(bench_imports(path) - allowed)}"


def test_no_module_of_the_package_infra_bench_or_tools_is_over_350_lines() -> None:
    import annotation_reconciler

    package = Path(annotation_reconciler.__file__).parent  # lambdas/ here, src/ in mutmut's copy
    folders = [package, ROOT / "infra", BENCH, ROOT / "tools"]
    modules = [p for folder in folders for p in folder.rglob("*.py")]
    assert len(modules) > 100
    # a module mutmut rewrote (its mutants beside the original) is measured in the normal run, not in mutmut's copy
    texts = {p: p.read_text() for p in modules}
    lines = {
        p.relative_to(p.parents[1]).as_posix(): len(text.splitlines())
        for p, text in texts.items()
        if "from mutmut.mutation.trampoline import" not in text
    }
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}


def test_the_double_answers_after_the_latency_and_overlaps_requests_in_flight() -> None:
    from bench.s3double import Latency, S3Double

    double = S3Double(Latency(list_page_ms=200, list_per_key_ms=0, request_ms=20))
    prefixes = [f"10001/r{i}/Annotations/" for i in range(8)]
    double.load("b", [f"{p}{i}.json" for i, p in enumerate(prefixes[:6])])
    storage = S3Storage(double, "b")  # type: ignore[arg-type]
    expected = {p: frozenset([f"{p}{i}.json"] if i < 6 else []) for i, p in enumerate(prefixes)}
    started = time.perf_counter()
    assert storage.list_many(prefixes, concurrency=1) == expected
    assert time.perf_counter() - started >= 8 * 0.2 and double.peak_in_flight == 1
    double.reset_counts()
    started = time.perf_counter()
    assert storage.list_many(prefixes, concurrency=8) == expected
    assert double.peak_in_flight == 8 and double.counts["ListObjectsV2"] == 8
    assert time.perf_counter() - started < 8 * 0.2
