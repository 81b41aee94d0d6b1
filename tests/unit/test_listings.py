"""rules/listings.py: the one presence question, ``Listings.presence`` (LISTED / TWIN / ABSENT / NOT_LISTED)."""

from __future__ import annotations

import unicodedata

import pytest

from annotation_reconciler.rules.listings import (
    Listings,
    Presence,
    Seen,
    listing_prefixes,
    metadata_folder,
    suspicious_prefixes,
)
from annotation_reconciler.rules.spelling import spelling_form

VS = "10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/"
KEY = f"{VS}100/ribosome-1.0.json"
NFC = "10001/Prot\u00e9ine/Reconstructions/VoxelSpacing10.000/Annotations/100/a-1.0.json"
NFD = unicodedata.normalize("NFD", NFC)


def test_the_key_itself_in_its_own_listing_is_listed() -> None:
    listings = Listings({VS: frozenset({KEY, f"{VS}100/other-1.0.json"})})
    assert listings.presence(KEY) == Presence(KEY, Seen.LISTED, KEY)
    assert listings.presence(KEY).reason == f"{KEY!r} is listed"


def test_a_key_no_complete_listing_holds_in_any_spelling_is_absent() -> None:
    listings = Listings({VS: frozenset({f"{VS}100/ribosome-1.1.json", f"{VS}100/ribosom-1.0.json"})})
    presence = listings.presence(KEY)
    assert presence.seen is Seen.ABSENT and presence.listed_as is None
    assert presence.reason == f"absent from the complete listing of {VS!r}"


@pytest.mark.parametrize(
    "spelled",
    [
        f"{VS}100/Ribosome-1.0.json",  # case
        f"{VS}100/ribosome%2D1.0.json",  # percent-encoding
        f"{VS}100/ribosome\uff0d1.0.json",  # a compatibility form (a fullwidth hyphen)
    ],
)
def test_a_listed_key_that_differs_only_in_spelling_is_a_twin_never_absent(spelled: str) -> None:
    listings = Listings({VS: frozenset({spelled})})
    presence = listings.presence(KEY)
    assert presence == Presence(KEY, Seen.TWIN, spelled)
    assert presence.reason == f"{KEY!r} differs only in spelling from the listed key {spelled!r}"


def test_plus_for_a_space_is_a_twin() -> None:
    key = f"{VS}100/ribo some-1.0.json"
    listings = Listings({VS: frozenset({f"{VS}100/ribo+some-1.0.json"})})
    assert listings.presence(key).seen is Seen.TWIN


def test_an_nfd_key_needs_both_spellings_of_its_folder_listed_and_finds_its_nfc_twin_there() -> None:
    nfc_prefix, nfd_prefix = metadata_folder(NFC), metadata_folder(NFD)
    assert set(listing_prefixes(NFD)) == {nfc_prefix, nfd_prefix}
    listings = Listings({nfc_prefix: frozenset({NFC}), nfd_prefix: frozenset()})
    assert listings.presence(NFD) == Presence(NFD, Seen.TWIN, NFC)
    assert listings.presence(NFC) == Presence(NFC, Seen.LISTED, NFC)


def test_a_failed_prefix_is_not_listed_with_its_error_even_when_another_spelling_holds_the_key() -> None:
    nfc_prefix, nfd_prefix = metadata_folder(NFC), metadata_folder(NFD)
    error = RuntimeError("SlowDown")
    listings = Listings({nfc_prefix: frozenset({NFC}), nfd_prefix: error})
    presence = listings.presence(NFC)
    assert presence.seen is Seen.NOT_LISTED and presence.prefix == nfd_prefix and presence.error is error
    assert presence.listed_as == NFC  # what the complete listing did show is kept (found_again reads it)
    assert presence.reason == f"listing {nfd_prefix!r} failed: SlowDown"


def test_a_prefix_never_listed_is_not_listed() -> None:
    presence = Listings({"other/Annotations/": frozenset({KEY})}).presence(KEY)
    assert presence == Presence(KEY, Seen.NOT_LISTED, None, VS, None)
    assert presence.reason == f"{KEY!r} is not under a completely listed prefix ({VS!r} was not listed)"


def test_a_key_in_besides_is_no_twin() -> None:
    twin = f"{VS}100/Ribosome-1.0.json"
    listings = Listings({VS: frozenset({twin})})
    assert listings.presence(KEY, besides={twin}).seen is Seen.ABSENT
    other = f"{VS}100/RIBOSOME-1.0.json"
    both = Listings({VS: frozenset({twin, other})})
    assert both.presence(KEY, besides={twin}) == Presence(KEY, Seen.TWIN, other)


def test_the_first_twin_in_sorted_order_is_named() -> None:
    twins = {f"{VS}100/RIBOSOME-1.0.json", f"{VS}100/Ribosome-1.0.json", f"{VS}100/riboSome-1.0.json"}
    assert Listings({VS: frozenset(twins)}).presence(KEY).listed_as == min(twins)


def test_a_zarr_folder_is_listed_by_a_key_inside_it_only_when_asked() -> None:
    zarr = f"{VS}100/100-membrane-1.0_segmentationmask.zarr"
    listings = Listings({VS: frozenset({f"{zarr}/0/0.0", f"{zarr}x/0"})})
    assert listings.presence(zarr, inside=True) == Presence(zarr, Seen.LISTED, zarr)
    assert listings.presence(zarr).seen is Seen.ABSENT  # a metadata key is never "listed" by keys below it
    gone = f"{VS}100/100-membrane-1.0_segmentationmas.zarr"
    assert listings.presence(gone, inside=True).seen is Seen.ABSENT  # a sibling sharing its start is not inside


def test_a_zarr_folder_spelled_differently_inside_is_a_twin() -> None:
    zarr = f"{VS}100/100-membrane-1.0_segmentationmask.zarr"
    spelled = f"{VS}100/100-Membrane-1.0_segmentationmask.zarr/.zattrs"
    presence = Listings({VS: frozenset({spelled})}).presence(zarr, inside=True)
    assert presence == Presence(zarr, Seen.TWIN, spelled)


def test_listings_is_the_mapping_it_wraps_and_of_keeps_an_instance() -> None:
    error = RuntimeError("AccessDenied")
    answers: dict[str, frozenset[str] | BaseException] = {VS: frozenset({KEY}), "x/Annotations/": error}
    listings = Listings(answers)
    assert dict(listings) == answers and len(listings) == 2 and listings[VS] == frozenset({KEY})
    assert listings.answer("x/Annotations/") is error and listings.answer("y/") is None
    assert listings.complete(VS) == frozenset({KEY}) and listings.complete("x/Annotations/") is None
    assert Listings.of(listings) is listings and Listings.of(answers) == listings
    answers[VS] = frozenset()  # a snapshot: the caller's dict changing later changes nothing
    assert listings.presence(KEY).seen is Seen.LISTED


def test_the_spelling_index_is_built_once_per_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    import annotation_reconciler.rules.listings as module

    keys = frozenset(f"{VS}{100 + n}/obj{n}-1.0.json" for n in range(50))
    calls: list[str] = []

    def counting(name: str) -> str:
        calls.append(name)
        return spelling_form(name)

    monkeypatch.setattr(module, "spelling_form", counting)
    listings = Listings({VS: keys})
    for n in range(20):
        assert listings.presence(f"{VS}{100 + n}/gone{n}-1.0.json").seen is Seen.ABSENT
    assert len(calls) == len(keys) + 20  # the listing folded once, then one fold per question


def test_data_files_ask_the_same_presence_a_file_spelled_apart_is_neither_missing_nor_present() -> None:
    from annotation_reconciler.portal.annotation_rows import FileRow
    from annotation_reconciler.rules.paths import BucketLayout
    from annotation_reconciler.service.datafiles import judge_files

    bucket = "cryoet-data-portal-public"
    layout = BucketLayout.from_prefix(bucket, f"s3://{bucket}/")
    zarr, ndjson, encoded, gone = (
        f"{VS}100/100-membrane-1.0_segmentationmask.zarr",
        f"{VS}100/100-ribosome-1.0_point.ndjson",
        f"{VS}100/100-ribo some-1.0_point.ndjson",
        f"{VS}100/100-gone-1.0_point.ndjson",
    )
    listing = frozenset({f"{zarr}/0/0.0", ndjson, f"{VS}100/100-ribo%20some-1.0_point.ndjson"})
    rows = [FileRow(n, 1, f"s3://{bucket}/{k}") for n, k in enumerate([zarr, ndjson, encoded, gone])]
    missing, present = judge_files(rows, {VS: listing}, layout)
    assert present == [0, 1] and [(row.file_id, key) for row, key in missing] == [(3, gone)]
    assert judge_files(rows, {VS: RuntimeError("SlowDown")}, layout) == ([], [])


def test_suspicious_prefixes_are_the_complete_listings_lacking_a_key_whatever_comes_before_it() -> None:
    """A row with no key (unmappable) is skipped, not the end of the list; a failed listing is no proof of
    anything, so it is not suspicious; a prefix lacking two keys is named once."""
    vs2 = VS.replace("TS_1", "TS_2")
    vs3 = VS.replace("TS_1", "TS_3")
    listings: dict[str, frozenset[str] | BaseException] = {
        VS: frozenset({KEY}),
        vs2: frozenset(),
        vs3: RuntimeError("SlowDown"),
    }
    keys = [None, KEY, f"{vs2}100/a-1.0.json", None, f"{vs2}101/b-1.0.json", f"{vs3}100/c-1.0.json"]
    assert suspicious_prefixes(keys, listings) == [vs2]
