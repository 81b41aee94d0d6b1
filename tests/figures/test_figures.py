"""The documents' figures are written by the commands that measure them (issue 30): the generated blocks, the
mutation table's merging, the test counts, the benchmarks' targets computed from a run, and the refusal to stamp
figures with a commit whose measured code differs from the tree."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from tools import count_tests, docblock, mutate, mutation_results, mutation_tables
from tools.docblock import DirtyTree, read_block, replace_block

A, B = "a" * 40, "b" * 40


# --- generated blocks ----------------------------------------------------------------------------------------------


def test_a_block_is_replaced_and_the_prose_around_it_kept_byte_for_byte() -> None:
    text = "# Title\n\nprose 1.5 s\n<!-- x:begin -->\nold\n<!-- x:end -->\ntail  \n"
    out = replace_block(text, "x", "new\nlines")
    assert out == "# Title\n\nprose 1.5 s\n<!-- x:begin -->\nnew\nlines\n<!-- x:end -->\ntail  \n"
    assert read_block(out, "x") == "\nnew\nlines\n"
    assert replace_block(out, "x", "new\nlines") == out  # idempotent


def test_a_missing_block_is_appended_and_other_blocks_are_left_alone() -> None:
    text = "prose\n<!-- y:begin -->\nkeep\n<!-- y:end -->\n"
    out = replace_block(text, "x", "body")
    assert out.startswith(text.rstrip("\n"))
    assert read_block(out, "y") == "\nkeep\n"
    assert read_block(out, "x") == "\nbody\n"
    assert read_block("<!-- x:begin --> no end", "x") is None


# --- the commit a figure names ----------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    for path in ("lambdas/pkg/a.py", "lambdas/pkg/b.py", "bench/x.py", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_a_tree_with_uncommitted_measured_code_is_refused_naming_the_files(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert docblock.require_clean(("lambdas", "bench"), "figures", repo) == head
    (repo / "README.md").write_text("2\n")  # prose is not measured code
    assert docblock.require_clean(("lambdas", "bench"), "figures", repo) == head
    (repo / "bench" / "x.py").write_text("2\n")
    (repo / "lambdas" / "pkg" / "new.py").write_text("untracked\n")
    with pytest.raises(DirtyTree) as refused:
        docblock.require_clean(("lambdas", "bench"), "figures", repo)
    assert "bench/x.py" in str(refused.value) and "lambdas/pkg/new.py" in str(refused.value)
    _git(repo, "add", "bench/x.py")  # staged but not committed is still not the commit
    (repo / "lambdas" / "pkg" / "new.py").unlink()
    with pytest.raises(DirtyTree, match=r"bench/x\.py"):
        docblock.require_clean(("lambdas", "bench"), "figures", repo)


def test_whether_a_file_changed_since_the_commit_of_its_figure(repo: Path) -> None:
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "lambdas" / "pkg" / "a.py").write_text("2\n")
    _git(repo, "commit", "-qam", "two")
    assert docblock.changed_since(first, "lambdas/pkg/a.py", repo) is True
    assert docblock.changed_since(first, "lambdas/pkg/b.py", repo) is False
    assert docblock.changed_since("0" * 40, "lambdas/pkg/b.py", repo) is None


# --- make mutate's table -----------------------------------------------------------------------------------------


def test_mutants_are_counted_under_their_file() -> None:
    found = {
        "annotation_reconciler.lifecycle.x_decide__mutmut_1": "killed",
        "annotation_reconciler.lifecycle.xǁPlanǁstep__mutmut_2": "survived",
        "annotation_reconciler.portal.deletion.x_delete__mutmut_1": "timeout",
        "annotation_reconciler.portal.deletion.x_delete__mutmut_2": "no tests",
        "annotation_reconciler.portal.deletion.x_delete__mutmut_3": "suspicious",
    }
    by_file = mutation_results.counts_by_file(found)
    assert by_file == {
        "lifecycle.py": Counter({"killed": 1, "survived": 1}),
        "portal/deletion.py": Counter({"timeout": 1, "no tests": 1, "suspicious": 1}),
    }
    row = mutation_tables.ScoreRow.of("portal/deletion.py", by_file["portal/deletion.py"], A, "2026-12-07")
    assert (row.mutants, row.killed, row.survived, row.timeout, row.no_tests, row.other) == (3, 0, 0, 1, 1, 1)


def test_a_mutant_mypy_rejects_counts_as_killed_and_its_files_section_says_how_many(tmp_path: Path) -> None:
    """``make test`` runs mypy (strict) before any test, so a mutant it rejects cannot pass; mutmut's verdict for it
    is "caught by type check"."""
    found = {
        "annotation_reconciler.paths.x_a__mutmut_1": "killed",
        "annotation_reconciler.paths.x_a__mutmut_2": "caught by type check",
        "annotation_reconciler.paths.x_a__mutmut_3": "caught by type check",
        "annotation_reconciler.paths.x_a__mutmut_4": "survived",
    }
    row = mutation_tables.ScoreRow.of("paths.py", mutation_results.counts_by_file(found)["paths.py"], A, "2026-12-07")
    assert (row.mutants, row.killed, row.survived, row.other, row.score) == (4, 3, 1, 0, 75.0)
    reliability = tmp_path / "RELIABILITY.md"
    reliability.write_text("<!-- mutation-scores:begin -->\n<!-- mutation-scores:end -->\n")
    mutation_tables.write_documents(reliability, found, {}, ["paths.py"], A, "2026-12-07")
    section = read_block((tmp_path / mutation_tables.SURVIVORS_FILE).read_text(), "survivors paths.py") or ""
    assert "1 not killed (2 of the killed rejected by mypy, no test run)" in section
    assert "x_a__mutmut_4" in section and "x_a__mutmut_2" not in section


def test_mypy_checks_the_mutated_copy_with_our_settings_and_without_the_errors_of_its_layout() -> None:
    import configparser
    import tomllib

    from tools.mutmut_typecheck import LAYOUT_ERRORS, mypy_ini

    ours = tomllib.loads((mutation_results.ROOT / "pyproject.toml").read_text())
    ini = configparser.ConfigParser()
    ini.read_string(mypy_ini(ours))
    settings = ours["tool"]["mypy"]
    assert ini["mypy"]["mypy_path"] == "src" and "files" not in ini["mypy"]
    assert ini["mypy"]["disable_error_code"] == ", ".join(LAYOUT_ERRORS) == "no-redef, unused-ignore"
    assert ini["mypy"]["strict"] == "True" and ini["mypy"]["python_version"] == settings["python_version"]
    for override in settings["overrides"]:
        section = ini[f"mypy-{','.join(override['module'])}"]
        assert {k: section[k] for k in section} == {k: str(v) for k, v in override.items() if k != "module"}
    assert ours["tool"]["mutmut"]["type_check_command"][-1] == "mypy"  # mutmut reads mypy's JSON lines then


def _row(module: str, killed: int, commit: str, date: str = "2026-12-01") -> mutation_tables.ScoreRow:
    return mutation_tables.ScoreRow(module, killed + 2, killed, 1, 1, 0, 0, commit[:10], date)


def test_a_run_over_some_files_replaces_only_their_rows_and_each_row_keeps_its_commit() -> None:
    modules = ["lifecycle.py", "paths.py", "portal/deletion.py"]
    changed_files = {(A[:10], "lambdas/annotation_reconciler/paths.py")}

    def changed(commit: str, path: str) -> bool | None:
        return (commit, path) in changed_files

    first = mutation_tables.render_table(
        {"lifecycle.py": _row("lifecycle.py", 90, A), "paths.py": _row("paths.py", 50, A)}, modules, changed
    )
    parsed = mutation_tables.parse_rows(first)
    assert parsed == {"lifecycle.py": _row("lifecycle.py", 90, A), "paths.py": _row("paths.py", 50, A)}

    merged = mutation_tables.merge_rows(parsed, {"lifecycle.py": _row("lifecycle.py", 95, B, "2026-12-07")})
    second = mutation_tables.render_table(merged, modules, changed)
    lines = {line.split(" | ")[0]: line for line in second.splitlines()}
    assert "| 95 |" in lines["| `lifecycle.py`"] and f"`{B[:10]}` | 2026-12-07 | no |" in lines["| `lifecycle.py`"]
    assert f"`{A[:10]}` | 2026-12-01 | **yes**: re-run |" in lines["| `paths.py`"]  # changed since A
    assert "not measured" in lines["| `portal/deletion.py`"]
    assert "(2 of 3)" in second and "| 149 | 145 | 2 | 2 |" in second  # totals over the measured files only
    assert mutation_tables.parse_rows(second) == merged


def test_a_row_of_a_file_no_longer_mutated_is_kept_and_marked() -> None:
    table = mutation_tables.render_table({"old.py": _row("old.py", 3, A)}, ["lifecycle.py"], lambda c, p: False)
    assert "no longer in only_mutate" in table and "(0 of 1)" in table


def test_only_the_files_a_run_tested_to_the_end_are_written() -> None:
    found = {
        "annotation_reconciler.paths.x_a__mutmut_1": "not checked",
        "annotation_reconciler.paths.x_a__mutmut_2": "not checked",
        "annotation_reconciler.lifecycle.x_b__mutmut_1": "killed",
        "annotation_reconciler.lifecycle.x_b__mutmut_2": "not checked",  # a run stopped (or still going)
        "annotation_reconciler.guards.x_c__mutmut_1": "killed",
        "annotation_reconciler.guards.x_c__mutmut_2": "survived",
    }
    assert set(mutation_results.counts_by_file(mutation_results.measured_only(found))) == {"guards.py"}


def test_the_documents_are_written_and_a_second_run_keeps_the_first_runs_files(tmp_path: Path) -> None:
    reliability = tmp_path / "RELIABILITY.md"
    reliability.write_text(
        "# Reliability\n\n## 5\n\n<!-- mutation-scores:begin -->\n<!-- mutation-scores:end -->\n\nafter\n"
    )
    modules = ["lifecycle.py", "paths.py"]
    first = {
        "annotation_reconciler.paths.x_a__mutmut_1": "killed",
        "annotation_reconciler.paths.x_a__mutmut_2": "survived",
    }
    name = "annotation_reconciler.paths.x_a__mutmut_2"
    mutation_tables.write_documents(reliability, first, {name: "--- a\n+++ b\n-x\n+y\n"}, modules, A, "2026-12-01")
    second = {"annotation_reconciler.lifecycle.x_b__mutmut_1": "killed"}
    mutation_tables.write_documents(reliability, second, {}, modules, B, "2026-12-07")
    text = reliability.read_text()
    assert text.startswith("# Reliability\n\n## 5\n\n") and text.endswith("\n\nafter\n")
    rows = mutation_tables.parse_rows(read_block(text, mutation_tables.SCORES_BLOCK))
    assert rows["paths.py"].commit == A[:10] and rows["paths.py"].survived == 1
    assert rows["lifecycle.py"].commit == B[:10] and rows["lifecycle.py"].killed == 1
    survivors = (tmp_path / mutation_tables.SURVIVORS_FILE).read_text()
    paths_section = read_block(survivors, "survivors paths.py") or ""
    assert name in paths_section and "+y" in paths_section and A[:10] in paths_section
    assert "0 not killed" in (read_block(survivors, "survivors lifecycle.py") or "")


def test_mutmut_results_are_read_for_the_selected_mutants_of_the_package_only() -> None:
    listing = (
        "    annotation_reconciler.paths.x_is_within__mutmut_1: killed\n"
        "    annotation_reconciler.lifecycle.x_decide__mutmut_2: survived\n"
        "    annotation_reconciler.lifecycle.xǁPlanǁsize__mutmut_1: no tests\n"
        "    other_package.x_f__mutmut_1: survived\n"
        "a line that is no verdict\n"
    )
    assert mutation_results.parse_verdicts(listing, ["annotation_reconciler.lifecycle.*"]) == {
        "annotation_reconciler.lifecycle.x_decide__mutmut_2": "survived",
        "annotation_reconciler.lifecycle.xǁPlanǁsize__mutmut_1": "no tests",
    }
    assert len(mutation_results.parse_verdicts(listing, [])) == 3  # no pattern: every mutant of the package


def test_mutate_refuses_to_write_files_and_functions_in_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        mutate.main(["--only", "rules/paths.py:is_within", "rules/lifecycle.py", "--markdown", "RELIABILITY.md"]) == 2
    )
    assert "not both" in capsys.readouterr().err


def test_resume_needs_a_run_and_the_checkout_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mutate, "STAGE", tmp_path / "mutmut")
    assert mutate.main(["--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
    (tmp_path / "mutmut" / "mutants").mkdir(parents=True)
    (tmp_path / "mutmut" / mutate.RUN_RECORD).write_text('{"commit": "' + "0" * 40 + '", "patterns": []}')
    assert mutate.main(["--resume"]) == 2
    assert "this checkout is not that commit" in capsys.readouterr().err
    assert mutate.main(["--resume", "--markdown", "RELIABILITY.md"]) == 2
    assert "--report-only --markdown" in capsys.readouterr().err


def test_a_run_of_functions_writes_one_row_per_item_into_its_own_table(tmp_path: Path) -> None:
    reliability = tmp_path / "RELIABILITY.md"
    reliability.write_text("# R\n\n<!-- mutation-scores:begin -->\nfiles\n<!-- mutation-scores:end -->\n")
    items = ["lifecycle.py:decide", "paths.py:is_*"]
    patterns = mutation_results.name_patterns(items, ["lifecycle.py", "paths.py"])
    found = {
        "annotation_reconciler.lifecycle.x_decide__mutmut_1": "killed",
        "annotation_reconciler.lifecycle.x_decide__mutmut_2": "survived",
        "annotation_reconciler.paths.x_is_within__mutmut_1": "killed",
        "annotation_reconciler.paths.x_is_metadata__mutmut_1": "not checked",  # unfinished: the item gets no row
    }
    by_item = mutation_results.counts_by_item(found, items, patterns)
    assert by_item == {"lifecycle.py:decide": Counter({"killed": 1, "survived": 1})}
    name = "annotation_reconciler.lifecycle.x_decide__mutmut_2"
    mutation_tables.write_function_documents(
        reliability, by_item, found, dict(zip(items, patterns, strict=True)), {name: "-a\n+b\n"}, A, "2026-12-07"
    )
    done = {"annotation_reconciler.paths.x_is_metadata__mutmut_1": "killed"}
    mutation_tables.write_function_documents(
        reliability,
        mutation_results.counts_by_item(done, items, patterns),
        done,
        dict(zip(items, patterns, strict=True)),
        {},
        B,
        "2026-12-08",
    )
    text = reliability.read_text()
    assert "\nfiles\n" in text  # the files' table is not touched
    rows = mutation_tables.parse_rows(read_block(text, mutation_tables.FUNCTIONS_BLOCK))
    assert rows["lifecycle.py:decide"] == mutation_tables.ScoreRow(
        "lifecycle.py:decide", 2, 1, 1, 0, 0, 0, A[:10], "2026-12-07"
    )
    assert rows["paths.py:is_*"].commit == B[:10] and rows["paths.py:is_*"].killed == 1
    assert "| **all function runs** (2) | 3 | 2 |" in text
    section = read_block((tmp_path / mutation_tables.SURVIVORS_FILE).read_text(), "survivors lifecycle.py:decide") or ""
    assert name in section and "+b" in section


def test_a_whole_file_run_replaces_the_older_function_runs_of_its_file_and_of_its_old_path(tmp_path: Path) -> None:
    """Function rows (and their survivors) measured at a commit no later than a whole-file row of their file, under
    its path or the path it had before the package's folders, give way to the file's row; a function row measured
    after the file's, and other files' function rows, stay."""
    reliability = tmp_path / "RELIABILITY.md"
    reliability.write_text("# R\n\n<!-- mutation-scores:begin -->\n<!-- mutation-scores:end -->\n\nprose\n")
    items = ["evidence.py:wide_*", "service/evidence.py:split_wide", "ledger/quarantines.py:hold"]
    modules = ["service/evidence.py", "ledger/quarantines.py", "ledger/exemptions.py"]
    patterns = dict(zip(items, mutation_results.name_patterns(items, [*modules, "evidence.py"]), strict=True))
    found = {
        "annotation_reconciler.service.evidence.x_wide_folder__mutmut_1": "survived",
        "annotation_reconciler.service.evidence.x_split_wide__mutmut_1": "survived",
        "annotation_reconciler.ledger.quarantines.x_hold__mutmut_1": "survived",
    }
    counts = {item: Counter({"survived": 1}) for item in items}
    mutation_tables.write_function_documents(reliability, counts, found, patterns, {}, A, "2026-12-07")
    later = ["exemptions.py:clear"]  # a function run after the file's run below
    found_later = {"annotation_reconciler.ledger.exemptions.x_clear__mutmut_1": "killed"}
    mutation_tables.write_function_documents(
        reliability,
        {later[0]: Counter({"killed": 1})},
        found_later,
        dict(zip(later, mutation_results.name_patterns(later, [*modules, "exemptions.py"]), strict=True)),
        {},
        "c" * 40,
        "2026-12-09",
    )
    whole = {
        "annotation_reconciler.service.evidence.x_split_wide__mutmut_1": "killed",
        "annotation_reconciler.ledger.exemptions.x_clear__mutmut_1": "killed",
    }
    mutation_tables.write_documents(reliability, whole, {}, modules, B, "2026-12-08")  # A, B unknown to git: kept
    assert len(mutation_tables.parse_rows(read_block(reliability.read_text(), mutation_tables.FUNCTIONS_BLOCK))) == 4
    order = {A[:10]: 0, B[:10]: 1, "c" * 10: 2}
    dropped = mutation_tables.drop_superseded_functions(reliability, lambda old, new: order[old] <= order[new])
    assert dropped == ["evidence.py:wide_*", "service/evidence.py:split_wide"]
    text = reliability.read_text()
    assert list(mutation_tables.parse_rows(read_block(text, mutation_tables.FUNCTIONS_BLOCK))) == [
        "exemptions.py:clear",
        "ledger/quarantines.py:hold",
    ]
    assert mutation_tables.parse_rows(read_block(text, mutation_tables.SCORES_BLOCK))["service/evidence.py"].killed == 1
    assert "<!-- mutation-scores:end -->\n\nprose\n" in text
    left = (tmp_path / mutation_tables.SURVIVORS_FILE).read_text()
    assert read_block(left, "survivors ledger/quarantines.py:hold") is not None
    assert read_block(left, "survivors evidence.py:wide_*") is None
    assert read_block(left, "survivors service/evidence.py:split_wide") is None
    assert read_block(left, "survivors service/evidence.py") is not None


def test_which_commit_is_the_later_one(repo: Path) -> None:
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("2\n")
    _git(repo, "commit", "-qam", "two")
    second = _git(repo, "rev-parse", "HEAD")
    assert docblock.is_ancestor(first, second, repo) and docblock.is_ancestor(first, first, repo)
    assert not docblock.is_ancestor(second, first, repo)
    assert not docblock.is_ancestor("0" * 40, second, repo)


def test_a_dropped_block_takes_its_markers_and_leaves_the_text_around_it() -> None:
    text = "head\n\n" + replace_block("", "a", "one") + "\n" + replace_block("", "b", "two") + "tail\n"
    dropped = docblock.drop_block(text, "a")
    assert read_block(dropped, "a") is None and read_block(dropped, "b") == "\ntwo\n"
    assert dropped.startswith("head\n\n<!-- b:begin -->") and dropped.endswith("tail\n")
    assert docblock.drop_block(dropped, "a") == dropped
    assert docblock.drop_block(replace_block("", "only", "x"), "only") == ""


# --- test counts -------------------------------------------------------------------------------------------------


def test_test_counts_come_from_the_collected_ids() -> None:
    output = (
        "tests/unit/test_a.py::test_x\ntests/unit/test_a.py::test_y[1]\ntests/integration/test_b.py::T::test_z\n"
        "tests/e2e/test_c.py::test_w\n\n4 tests collected in 1.00s\n"
    )
    ids = count_tests.collected(output)
    assert len(ids) == 4
    parts = count_tests.count_parts(ids)
    assert parts == Counter({"unit": 2, "integration": 1, "e2e": 1})
    table = count_tests.render(parts, A)
    assert "**4 tests**, 3 of them the fast ones" in table and A[:10] in table
    assert "| `tests/unit` | 2 |" in table and "reliability" not in table


# --- make bench's targets ----------------------------------------------------------------------------------------


def _met(section: object, starts: str) -> list[str]:
    rows = [row for row in section.rows if row[0].startswith(starts)]  # type: ignore[attr-defined]
    assert rows, f"no target row starts with {starts!r}"
    return [row[2] for row in rows]


def _facts(cleanup_x: float, events_sql: int, events_rate: float, purge_requests: int) -> dict[str, object]:
    from bench import bench_cleanup

    c = bench_cleanup.DEFAULT_S3_CONCURRENCY
    return {
        "cleanup": {"ratios": {1: 10.0, c: cleanup_x}, "baseline_s": 20.0, "walls": {c: 20.0 / cleanup_x}},
        "events_sql_per_batch": {
            ("metadata files", 10): 2,
            ("metadata files", 100): events_sql,
            ("whole annotation folders", 100): 9,
        },
        "events_per_s": {("metadata files", 100): events_rate, ("whole annotation folders", 100): 100.0},
        "purge_s3": {
            1000: {"label": "1k sampled", "requests": 640, "purged": 1000, "voxel_spacings": 950},
            "shared": {
                "label": "1k in 200 voxel spacings",
                "requests": purge_requests,
                "purged": 1000,
                "voxel_spacings": 200,
            },
        },
        "coldstart": {"median": 0.99, "max": 1.2, "cpu": 0.6, "load": 1.0},
    }


def test_each_target_is_met_or_not_from_the_runs_figures() -> None:
    from bench.targets import NOT_MEASURED, targets

    met = targets(_facts(cleanup_x=60.0, events_sql=3, events_rate=5000.0, purge_requests=300))
    assert _met(met, "cleanup-stale-annotations dry run") == ["yes"]
    assert _met(met, "event path: at most 3 SQL") == ["yes"]
    assert _met(met, "event path: >= 5,000 events/s") == ["yes"]
    assert _met(met, "purge: at most 0.3") == ["yes"]  # the sampled purge is a figure, not the target's case
    assert _met(met, "… purge of 1k sampled") == ["—"]
    assert _met(met, "Lambda cold start") == ["yes"]
    assert _met(met, "… whole annotation folders") == ["—"]
    # a target this run did not measure says so, never "yes"
    assert _met(met, "full reconciliation at 100k") == [NOT_MEASURED]

    missed = targets(_facts(cleanup_x=59.9, events_sql=4, events_rate=4999.0, purge_requests=301))
    for target in ("cleanup-stale-annotations", "event path: at most 3", "event path: >= 5,000", "purge: at most"):
        assert _met(missed, target) == ["**no**"], target


def test_the_full_reconciliation_target_is_judged_at_100k_only() -> None:
    from bench.targets import targets

    def scan(n: int, x: float, scan_s: float) -> dict[str, object]:
        return {
            "measured": x,
            "baseline_s": x * scan_s,
            "scan_s": scan_s,
            "baseline_lanes": 1 if n == 1000 else 40,
            "concurrency": 32,
            "modelled": 100.0,
            "req_per_annotation": 0.2,
            "shard_statements": [3, 3],
            "shard_sizes": [250, 250],
        }

    at_1k = targets({"scan": {(1000, "double"): scan(1000, 80.0, 1.0)}})
    assert _met(at_1k, "full reconciliation at 100k") == ["not measured"]
    # 100k measured at 45x but only 38x at the 1k one-after-another time per annotation: the lower one decides
    both = targets({"scan": {(1000, "double"): scan(1000, 38.0, 1.0), (100_000, "double"): scan(100_000, 45.0, 100.0)}})
    assert _met(both, "full reconciliation at 100k") == ["**no**"]
    assert "38.0x at the 1k one-after-another time" in next(r[1] for r in both.rows if "at 100k" in r[0])
    fine = targets({"scan": {(1000, "double"): scan(1000, 41.0, 1.0), (100_000, "double"): scan(100_000, 45.0, 100.0)}})
    assert _met(fine, "full reconciliation at 100k") == ["yes"]


# --- RELIABILITY.md's run figures ----------------------------------------------------------------------------------


def test_the_models_counters_are_written_with_the_commit_and_the_examples_run() -> None:
    from tools import reliability_figures

    stats = {"examples of 50 steps": 41, "steps": 2050, "rule scan": 7, "rule ingest": 3, "deleted by purge": 2}
    body = reliability_figures.render_model({"examples": 41, "steps": 50, "stats": stats}, A, "cmd", 120.0)
    assert f"`{A[:10]}`" in body and "2.0 min of pytest" in body
    assert "| examples asked for / of exactly 50 steps run | 41 / 41 |" in body
    assert "| rule calls | scan 7, ingest 3 |" in body  # most called first
    assert "| deleted by purge | 2 |" in body and "| steps run in all | 2,050 |" in body


def test_the_faults_and_the_corpus_are_counted(tmp_path: Path) -> None:
    from tools import reliability_figures

    body = reliability_figures.render_faults({"S3 503": 3, "killed": 1}, A, "cmd", None)
    assert "| S3 503 | 3 |" in body and "| **in all** | **4** |" in body
    events, configs = tmp_path / "tests" / "data" / "bad_events", tmp_path / "tests" / "data" / "bad_config"
    events.mkdir(parents=True)
    configs.mkdir(parents=True)
    for name, expect in (("a", "error"), ("b", "error"), ("c", "skip:test_event")):
        (events / f"{name}.json").write_text(f'{{"expect": "{expect}", "event": {{}}}}')
    (configs / "x.json").write_text("{}")
    counts = reliability_figures.corpus_counts(tmp_path)
    assert counts == {"event files": 3, "config files": 1, "expect": {"error": 2, "skip:test_event": 1}}
    assert "| 3 | error 2, skip:test_event 1 |" in reliability_figures.render_corpus(counts, A, "cmd")
