"""The importer's pure rules for portal parity: ``annotation_file.source``, ``file_size`` and folder identity."""

from __future__ import annotations

import pytest

from annotation_reconciler.db_import.finders import total_under
from annotation_reconciler.db_import.importers.annotation import same_folder
from annotation_reconciler.db_import.items import file_source


@pytest.mark.parametrize(
    ("annotation", "dataset", "portal_standard", "source"),
    [
        (300, 300, False, "dataset_author"),
        (300, 300, True, "dataset_author"),  # the dataset's own deposition wins, as in the portal
        (301, 300, True, "portal_standard"),
        (301, 300, False, "community"),
        (301, None, False, "community"),
    ],
)
def test_file_source(annotation: int, dataset: int | None, portal_standard: bool, source: str) -> None:
    assert file_source(annotation, dataset, portal_standard) == source


OBJECTS = sorted(
    [
        ("a/100-x_point.ndjson", 5),
        ("a/100-x_seg.zarr/.zattrs", 10),
        ("a/100-x_seg.zarr/0/0", 100),
        ("a/100-x_seg.zarr.bak", 1000),  # shares the path's characters: the portal's LIST by prefix counts it
        ("a/100-x_seg.zarrz/0", 7),
        ("b/100-x_seg.zarr/0", 50),
    ]
)


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("a/100-x_point.ndjson", 5),
        ("a/100-x_seg.zarr", 10 + 100 + 1000 + 7),
        ("a/100-x_seg.zarr/", 110),
        ("a/100-x_seg.mrc", 0),
        ("b/", 50),
        ("c", 0),
    ],
)
def test_total_under_is_the_sum_of_the_objects_whose_keys_start_with_the_path(path: str, size: int) -> None:
    assert total_under(OBJECTS, path) == size


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("1/TS/Reconstructions/VoxelSpacing13.480/", "1/TS/Reconstructions/VoxelSpacing13.480/", True),
        ("1/TS/Reconstructions/VoxelSpacing13.48/", "1/TS/Reconstructions/VoxelSpacing13.480/", True),
        ("1/ts/Reconstructions/VoxelSpacing13.480/", "1/TS/Reconstructions/VoxelSpacing13.480/", True),
        ("1/Te\u0301/Reconstructions/VoxelSpacing1.000/", "1/T\u00e9/Reconstructions/VoxelSpacing1.000/", True),
        ("1/TS/Reconstructions/VoxelSpacing15.980/", "1/TS/Reconstructions/VoxelSpacing13.480/", False),
        ("1/TS/Reconstructions/VoxelSpacing13.481/", "1/TS/Reconstructions/VoxelSpacing13.480/", False),
        ("1/TS2/Reconstructions/VoxelSpacing13.480/", "1/TS/Reconstructions/VoxelSpacing13.480/", False),
        ("2/TS/Reconstructions/VoxelSpacing13.480/", "1/TS/Reconstructions/VoxelSpacing13.480/", False),
        ("1/TS/Reconstructions/VoxelSpacing13.4801/", "1/TS/Reconstructions/VoxelSpacing13.480/", True),  # 3 places
        ("1/TS/Reconstructions/VoxelSpacing13.4806/", "1/TS/Reconstructions/VoxelSpacing13.480/", False),
        ("1/TS/Reconstructions/Other/", "1/TS/Reconstructions/OTHER/", True),  # no spacing: equal but for spelling
        ("1/TS/Reconstructions/Other/", "1/TS/Reconstructions/Else/", False),
        ("1/TS/Reconstructions/VoxelSpacing13.480/", "1/TS/Reconstructions/Other/", False),
    ],
)
def test_same_folder(one: str, other: str, same: bool) -> None:
    assert same_folder(one, other) is same
    assert same_folder(other, one) is same
