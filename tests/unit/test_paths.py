"""paths.py: every stored path form, the metadata glob, and what can never be mapped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.rules.paths import (
    BucketLayout,
    KeyKind,
    annotations_prefix,
    classify_key,
    is_within,
    voxel_spacing_prefix,
)

B = "cryoet-data-portal-public"
KEY = "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json"
LAYOUT = BucketLayout.from_prefix(B, f"s3://{B}/")


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (KEY, KeyKind.METADATA),
        ("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/101/membrane-2.json", KeyKind.METADATA),
        (
            "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/100-ribosome-1.0_globalcaption.json",
            KeyKind.DATA_FILE,
        ),
        (
            "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/100-ribosome-1.0_point_caption.json",
            KeyKind.DATA_FILE,
        ),
        (
            "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/100-ribosome-1.0_point.ndjson",
            KeyKind.DATA_FILE,
        ),
        ("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/x_mask.zarr/0/1.0.0", KeyKind.DATA_FILE),
        ("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/x_mask.zarr/0/1.json", KeyKind.DATA_FILE),
        ("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/ribosome-1.0.json", KeyKind.OTHER),
        ("10001/TS_026/run_metadata.json", KeyKind.OTHER),
        ("10001/dataset_metadata.json", KeyKind.OTHER),
        ("10001/TS_026/Reconstructions/VoxelSpacing13.480/Tomograms/100/tomo-1.json", KeyKind.OTHER),
    ],
)
def test_classify(key: str, kind: KeyKind) -> None:
    assert classify_key(key) is kind


@pytest.mark.parametrize(
    ("prefix", "stored", "key"),
    [
        (f"s3://{B}/", f"s3://{B}/{KEY}", KEY),
        (f"s3://{B}/", f"{B}/{KEY}", KEY),
        (f"s3://{B}/", KEY, KEY),
        (f"{B}/", KEY, KEY),
        ("", f"s3://{B}/{KEY}", KEY),
        (f"s3://{B}", KEY, KEY),
        (f"s3://{B}/staging/", f"s3://{B}/staging/{KEY}", f"staging/{KEY}"),
        (f"s3://{B}/staging/", KEY, f"staging/{KEY}"),
        (f"s3://{B}/staging/", f"staging/{KEY}", f"staging/{KEY}"),
        ("staging", KEY, f"staging/{KEY}"),
        (f"{B}/staging/", f"{B}/staging/{KEY}", f"staging/{KEY}"),
    ],
)
def test_to_key_every_form(prefix: str, stored: str, key: str) -> None:
    layout = BucketLayout.from_prefix(B, prefix)
    assert layout.to_key(stored) == key
    assert stored in layout.stored_forms(key)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        f"s3://other-bucket/{KEY}",
        f"other-bucket/{KEY}",
        f"https://files.example.org/{KEY}",
        f" s3://{B}/{KEY}",
        f"s3://{B}/{KEY}\n",
        f"s3://{B}/10001/../10002/x.json",
        f"s3://{B}//10001/x.json",
        "TS_026/Annotations/100/x-1.json",
        f"s3://{B}",
        f"s3://{B}/",
        "gs://b/10001/x.json",
        "10001/a\x00b.json",
        f"s3://{B}/./10001/x.json",
    ],
)
def test_unmappable_paths(stored: str | None) -> None:
    assert LAYOUT.to_key(stored) is None


def test_key_outside_root_is_unmappable() -> None:
    layout = BucketLayout.from_prefix(B, f"s3://{B}/staging/")
    assert layout.to_key(f"s3://{B}/{KEY}") is None


def test_prefix_of_another_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="names bucket 'other'"):
        BucketLayout.from_prefix(B, "s3://other/")


@pytest.mark.parametrize(
    ("prefix", "root"),
    [("/XRAY/", "XRAY/"), ("XRAY", "XRAY/"), (f"s3://{B}/tomoX/", "tomoX/"), (f"{B}/X/", "X/"), ("/", "")],
)
def test_a_root_loses_only_its_slashes(prefix: str, root: str) -> None:
    assert BucketLayout.from_prefix(B, prefix).root == root


def test_voxel_spacing_and_annotations_prefix() -> None:
    vs = voxel_spacing_prefix(KEY)
    assert vs == "10001/TS_026/Reconstructions/VoxelSpacing13.480/"
    assert annotations_prefix(vs) == "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/"
    assert voxel_spacing_prefix("10001/run_metadata.json") is None


def test_is_within() -> None:
    assert is_within("a/b.zarr/0/0.0", "a/b.zarr")
    assert is_within("a/b.zarr", "a/b.zarr/")
    assert not is_within("a/b.zarr2/0", "a/b.zarr")
    assert is_within("a/MASKX/0.0", "a/MASKX/")  # only the trailing "/" is dropped, no other character


segment = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=12)


@given(st.lists(segment, min_size=1, max_size=5), st.sampled_from(["s3", "bucket", "relative"]))
def test_every_stored_form_maps_back(segments: list[str], style: str) -> None:
    key = "10001/" + "/".join(segments)
    expected = key if all(s not in (".", "..") for s in segments) else None
    stored = {"s3": f"s3://{B}/{key}", "bucket": f"{B}/{key}", "relative": key}[style]
    if stored != stored.strip():
        expected = None
    assert LAYOUT.to_key(stored) == expected
    if expected:
        assert all(LAYOUT.to_key(form) == key for form in LAYOUT.stored_forms(key))


def test_a_bare_path_holding_a_scheme_separator_is_unmappable() -> None:
    layout = BucketLayout.from_prefix("cryoet-data-portal-public", "")
    assert layout.to_key("10001/a://b/Annotations/100/x-1.0.json") is None
    assert layout.to_key("10001/a/Annotations/100/x-1.0.json") == "10001/a/Annotations/100/x-1.0.json"


def test_stored_forms_strip_the_root_only_from_keys_under_it() -> None:
    layout = BucketLayout.from_prefix("cryoet-data-portal-public", "s3://cryoet-data-portal-public/staging/")
    inside = layout.stored_forms("staging/10001/x-1.0.json")
    outside = layout.stored_forms("other/10001/x-1.0.json")
    assert inside[-1] == "10001/x-1.0.json" and len(inside) == 4
    assert len(outside) == 3 and all(f.endswith("other/10001/x-1.0.json") for f in outside)
