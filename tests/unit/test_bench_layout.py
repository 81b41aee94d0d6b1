"""The benchmarks' own rules: modules import downwards only, and the S3 double's latency overlaps like requests
in flight (so that concurrency shows in measured wall time)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from annotation_reconciler.storage import S3Storage

BENCH = Path(__file__).resolve().parents[2] / "bench"
#: What each kind of bench module may import from bench/ (the benchmarks, then the shared parts).
SHARED = {"baseline", "portal", "measure", "report", "s3double"}
ALLOWED = {"bench_scan": {"bench_inventory"}, "run_all": {p.stem for p in BENCH.glob("bench_*.py")}}


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
