"""evidence.split_wide, pure: one wide folder's listing answers every prefix under it; a wide folder missing or
failed leaves the prefixes under it out (or unknown) and no other."""

from __future__ import annotations

from annotation_reconciler.service.evidence import split_wide, wide_folder

A = "10001/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/"
B = "10001/TS_001/Reconstructions/VoxelSpacing13.480/Annotations/"
C = "10001/TS_002/Reconstructions/VoxelSpacing13.480/Annotations/"


def test_a_wide_folder_missing_or_failed_leaves_the_other_prefixes_answered() -> None:
    assert [wide_folder(p) for p in (A, B, C)] == ["10001/TS_000/", "10001/TS_001/", "10001/TS_002/"]
    failed = RuntimeError("503 SlowDown")
    wide = {"10001/TS_001/": failed, "10001/TS_002/": frozenset({C + "100/a-1.0.json", "10001/TS_002/x.json"})}
    listings, folders = split_wide([A, B, C], wide)  # TS_000 was not listed wide (over the page limit)
    assert listings == {B: failed, C: frozenset({C + "100/a-1.0.json"})}
    assert folders["10001/TS_001/"] is failed
    assert folders["10001/TS_002/"] == frozenset({"10001/TS_002/Reconstructions/"})
    assert not any(parent.startswith("10001/TS_000/") for parent in folders)
