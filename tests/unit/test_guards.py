"""Calibrated guards, sticky releases and the scan's data-file check: pure decisions, one example each."""

from __future__ import annotations

import pytest

from annotation_reconciler.portal.annotation_rows import FileRow
from annotation_reconciler.rules.guards import GUARD_FLOOR, dataset_folder, empty_prefixes, guard_allows
from annotation_reconciler.rules.lifecycle import Candidate, Evidence, Verdict, decide
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.service.datafiles import judge_files
from support.candidates import candidate

B = "cryoet-data-portal-public"
LAYOUT = BucketLayout.from_prefix(B, f"s3://{B}/")
DATASET = "10001/"
VS = f"{DATASET}TS_1/Reconstructions/VoxelSpacing10.000/Annotations/"
META = f"{VS}100/ribosome-1.0.json"
DATA = f"{VS}100/100-ribosome-1.0_point.ndjson"
ZARR = f"{VS}100/100-ribosome-1.0_segmentationmask.zarr"


def path(k: str) -> str:
    return f"s3://{B}/{k}"


def fresh(aid: int = 1, k: str = META, dataset: int = 1) -> Candidate:
    return candidate(aid, path(k), dataset, 7)


def verdict_of(candidate: Candidate, evidence: Evidence, max_fraction: float | None = None) -> tuple[Verdict, str]:
    [d] = decide([candidate], evidence, LAYOUT, max_fraction=max_fraction).items
    return d.verdict, d.reason


# --- suspicious or ordinary: an Annotations/ prefix that lists no metadata ------------------------


def test_a_lone_retraction_in_a_healthy_dataset_is_ordinary() -> None:
    """The only annotation of a voxel spacing loses its metadata; its data files and the run's tomograms stay."""
    verdict, why = verdict_of(fresh(), Evidence({VS: frozenset({DATA})}, neighbours={VS: True}))
    assert verdict is Verdict.STALE and "ordinary" in why and f"the dataset folder {DATASET!r} still holds" in why


def test_a_dataset_folder_that_holds_nothing_else_is_suspicious() -> None:
    """A whole dataset gone, or a prefix setting that matches nothing: held for an operator."""
    verdict, why = verdict_of(fresh(), Evidence({VS: frozenset()}, neighbours={VS: False}))
    assert verdict is Verdict.HELD and why.endswith(
        f"the dataset folder {DATASET!r} holds nothing else (a dataset gone, or a prefix setting that matches nothing)"
    )


def test_an_unchecked_dataset_folder_is_held_and_a_failed_check_is_unknown() -> None:
    assert verdict_of(fresh(), Evidence({VS: frozenset()}))[0] is Verdict.HELD
    verdict, why = verdict_of(fresh(), Evidence({VS: frozenset()}, neighbours={VS: RuntimeError("503 SlowDown")}))
    assert verdict is Verdict.UNKNOWN
    assert why.endswith(f"the dataset folder {DATASET!r} holds other objects: 503 SlowDown")


def test_the_dataset_folder_check_changes_nothing_for_a_prefix_with_other_metadata_or_a_quarantined_row() -> None:
    other = f"{VS}101/actin-1.0.json"
    assert verdict_of(fresh(), Evidence({VS: frozenset({other})}, neighbours={VS: False}))[0] is Verdict.STALE
    row = candidate(1, path(META), 1, 7, quarantine_id=5, quarantined_path=path(META), quarantined_key=META)
    assert verdict_of(row, Evidence({VS: frozenset()}, neighbours={VS: False}))[0] is Verdict.STALE


def test_dataset_folder_and_empty_prefixes() -> None:
    assert dataset_folder(VS) == DATASET
    assert dataset_folder("root/odd/Annotations/") == "root/odd/"
    # found by make mutate: only the portal's whole layout takes the dataset folder, anything else its parent
    assert dataset_folder("a/b/c/d/Annotations/") == "a/b/c/d/"  # five parts, not the portal's
    assert dataset_folder("x/VoxelSpacing1.0/Annotations/") == "x/VoxelSpacing1.0/"  # too short for it
    assert dataset_folder("root/ds/TS/Reconstructions/VoxelSpacing1.0/Annotations/") == "root/ds/"
    assert dataset_folder("root/X/") == "root/"  # a folder name ending in X keeps its letters
    listings: dict[str, frozenset[str] | BaseException] = {
        VS: frozenset({DATA}),
        "10001/TS_2/Reconstructions/VoxelSpacing10.000/Annotations/": frozenset({META.replace("TS_1", "TS_2")}),
        "10001/TS_3/Reconstructions/VoxelSpacing10.000/Annotations/": RuntimeError("failed"),
    }
    assert empty_prefixes(listings) == [VS]


# --- the mass-deletion guard's floor -------------------------------------------------------------


@pytest.mark.parametrize(
    ("opened", "total", "allowed"),
    [
        (1, 5, True),  # one stale annotation in a dataset of five: the example
        (GUARD_FLOOR, 5, True),
        (GUARD_FLOOR + 1, 5, False),
        (5, 5, False),  # the whole dataset
        (2, 2, False),
        (1, 1, False),
        (10, 100, True),  # the fraction still governs large datasets
        (11, 100, False),
        (1, 0, False),  # size unknown
    ],
)
def test_guard_floor(opened: int, total: int, allowed: bool) -> None:
    assert guard_allows(opened, total, 0.1) is allowed
    rows = [fresh(i, f"{VS}{100 + i}/obj-1.0.json") for i in range(opened)]
    listing = {VS: frozenset({f"{VS}999/kept-1.0.json"})}
    decisions = decide(rows, Evidence(listing, {1: 0}, {1: total}), LAYOUT, max_fraction=0.1)
    assert (len(decisions.of(Verdict.STALE)) == opened) is allowed
    assert (len(decisions.of(Verdict.HELD)) == opened) is not allowed


def test_a_floor_of_zero_is_the_bare_fraction() -> None:
    assert not guard_allows(1, 5, 0.1, floor=0) and guard_allows(1, 10, 0.1, floor=0)


# --- an operator's release sticks ----------------------------------------------------------------


def test_an_exempt_row_is_released_again_while_its_stored_path_is_the_released_one() -> None:
    listing = {VS: frozenset({f"{VS}101/actin-1.0.json"})}
    verdict, why = verdict_of(fresh(), Evidence(listing, exempt={1: path(META)}))
    assert verdict is Verdict.RELEASE
    assert why == "released by an operator: exempt until its metadata or stored path changes"
    [d] = decide([fresh()], Evidence(listing, exempt={1: path(META)}), LAYOUT, max_fraction=0.1).items
    assert d.key is None  # a scan does not count it as present
    moved = f"{VS}102/ribosome-2.0.json"
    assert verdict_of(fresh(k=moved), Evidence(listing, exempt={1: path(META)}))[0] is Verdict.STALE


def test_an_exempt_row_whose_key_is_listed_again_is_present_so_the_scan_ends_the_exemption() -> None:
    back = {VS: frozenset({META})}
    [d] = decide([fresh()], Evidence(back, exempt={1: path(META)}), LAYOUT, max_fraction=0.1).items
    assert (d.verdict, d.key) == (Verdict.RELEASE, META)
    assert d.reason == "metadata present in S3 (an operator's release of it lapses)"
    for failed in ({VS: RuntimeError("AccessDenied")}, {}):  # a failed or missing listing shows nothing
        [d] = decide([fresh()], Evidence(failed, exempt={1: path(META)}), LAYOUT, max_fraction=0.1).items
        assert (d.verdict, d.key) == (Verdict.RELEASE, None)


# --- data files found missing by a scan ---------------------------------------------------------


def test_data_files_are_missing_only_from_complete_listings() -> None:
    rows = [FileRow(1, 1, path(DATA)), FileRow(2, 1, path(ZARR)), FileRow(3, 1, path(f"{VS}100/gone.ndjson"))]
    listing = frozenset({META, DATA, f"{ZARR}/.zattrs"})
    missing, present = judge_files(rows, {VS: listing}, LAYOUT)
    assert [(r.file_id, k) for r, k in missing] == [(3, f"{VS}100/gone.ndjson")] and present == [1, 2]
    missing, present = judge_files(rows, {VS: frozenset({META})}, LAYOUT)
    assert [r.file_id for r, _ in missing] == [1, 2, 3] and present == []
    assert judge_files(rows, {VS: RuntimeError("500")}, LAYOUT) == ([], [])
    assert judge_files(rows, {}, LAYOUT) == ([], [])
    other = [FileRow(4, 1, path("10001/TS_1/Reconstructions/VoxelSpacing10.000/Tomograms/x.zarr"))]
    assert judge_files(other, {VS: listing}, LAYOUT) == ([], [])
    # files that say nothing (outside the bucket, outside an Annotations/ prefix, under a failed listing) are
    # skipped one by one: the files after them are still judged
    elsewhere = "s3://another-bucket/10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/100/a.ndjson"
    failed = "10002/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/100/b.ndjson"
    skipped = [FileRow(5, 1, elsewhere), *other, FileRow(6, 2, path(failed))]
    listings = {VS: listing, failed.rsplit("/", 2)[0] + "/": RuntimeError("500")}
    missing, present = judge_files([*skipped, *rows], listings, LAYOUT)
    assert [(r.file_id, k) for r, k in missing] == [(3, f"{VS}100/gone.ndjson")] and present == [1, 2]


def test_a_data_file_spelled_differently_in_s3_is_never_missing() -> None:
    rows = [FileRow(1, 1, path(f"{VS}100/Prote\u0301ine.ndjson"))]
    missing, present = judge_files(rows, {VS: frozenset({f"{VS}100/prot\u00e9ine.ndjson"})}, LAYOUT)
    assert (missing, present) == ([], [])
