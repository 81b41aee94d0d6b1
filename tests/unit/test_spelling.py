"""spelling.py and the twin rules of lifecycle.decide: twins at any level, from the dataset folder down."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.rules.guards import folder_levels
from annotation_reconciler.rules.lifecycle import Evidence, Verdict, decide
from annotation_reconciler.rules.listings import suspicious_prefixes
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.spelling import is_twin, spelling_form, twin_folder
from support.candidates import candidate as make_candidate

B = "cryoet-data-portal-public"
LAYOUT = BucketLayout(B)
DS = "10001/"
RUN = f"{DS}TS_1/"
VS = f"{RUN}Reconstructions/VoxelSpacing10.000/"
PREFIX = f"{VS}Annotations/"
KEY = f"{PREFIX}100/obj-1.0.json"
OTHER = f"{PREFIX}101/other-1.0.json"
#: every level of PREFIX, as S3 lists it when nothing is spelled apart
HEALTHY = {
    "": frozenset({DS, "10002/"}),
    DS: frozenset({RUN, f"{DS}TS_2/"}),
    RUN: frozenset({f"{RUN}Reconstructions/"}),
    f"{RUN}Reconstructions/": frozenset({VS}),
    VS: frozenset({PREFIX}),
}


def verdict(siblings: dict[str, frozenset[str] | BaseException] | None, listing: frozenset[str] = frozenset({OTHER})):
    candidate = make_candidate(1, f"s3://{B}/{KEY}", 10001, 7)
    [d] = decide([candidate], Evidence({PREFIX: listing}, siblings=siblings), LAYOUT, max_fraction=None).items
    return d.verdict, d.reason


def test_the_levels_run_from_the_dataset_folder_to_the_annotations_prefix() -> None:
    assert folder_levels(PREFIX) == [
        ("", DS),
        (DS, "TS_1/"),
        (RUN, "Reconstructions/"),
        (f"{RUN}Reconstructions/", "VoxelSpacing10.000/"),
        (VS, "Annotations/"),
    ]
    assert folder_levels("root/a/Annotations/") == [("root/", "a/"), ("root/a/", "Annotations/")]  # not the portal's
    assert folder_levels("top/10001/TS/Reconstructions/VoxelSpacing1.0/Annotations/")[0] == ("top/", "10001/")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("TS_1", "ts_1"),
        ("TS 1+2 é", "TS+1%2B2+%C3%A9"),
        ("TS 1+2 é", "TS%201%2B2%20e%CC%81"),
        ("TS_1", "TS%255F1"),  # encoded twice
        ("ﬁle", "FILE"),
        ("Stra\u00dfe", "STRASSE"),
    ],
)
def test_twins(a: str, b: str) -> None:
    assert is_twin(a, b) and is_twin(b, a) and not is_twin(a, a)


@pytest.mark.parametrize(("a", "b"), [("TS_1", "TS_2"), ("TS_1", "TS-1"), ("100", "1000")])
def test_not_twins(a: str, b: str) -> None:
    assert not is_twin(a, b)


def test_a_row_is_missing_only_when_no_level_has_a_twin() -> None:
    assert verdict(HEALTHY)[0] is Verdict.STALE
    assert verdict(None)[0] is Verdict.STALE  # a pure caller that did not look judges by the listings alone


@pytest.mark.parametrize(
    ("parent", "twin"),
    [
        ("", "1000%31/"),
        ("", "\uff110001/"),
        (DS, f"{DS}ts_1/"),
        (DS, f"{DS}TS%5F1/"),
        (RUN, f"{RUN}RECONSTRUCTIONS/"),
        (f"{RUN}Reconstructions/", f"{RUN}Reconstructions/voxelspacing10.000/"),
        (VS, f"{VS}annotations/"),
    ],
)
def test_a_twin_folder_at_any_level_is_unknown(parent: str, twin: str) -> None:
    siblings = {**HEALTHY, parent: HEALTHY[parent] | {twin}}
    got, why = verdict(siblings)
    assert got is Verdict.UNKNOWN and twin in why and "spelling" in why
    assert verdict(siblings, frozenset())[0] is Verdict.UNKNOWN  # an empty prefix is not "ordinary" either


@pytest.mark.parametrize("parent", list(HEALTHY))
def test_a_level_not_listed_or_failed_is_unknown(parent: str) -> None:
    missing = {p: f for p, f in HEALTHY.items() if p != parent}
    assert verdict(missing)[0] is Verdict.UNKNOWN
    assert verdict({**HEALTHY, parent: RuntimeError("SlowDown")})[0] is Verdict.UNKNOWN


def test_an_encoded_twin_of_the_key_in_the_listing_is_unknown() -> None:
    twin = f"{PREFIX}100/{quote('obj-1.0.json', safe='')}".replace("-", "%2D")
    assert verdict(HEALTHY, frozenset({twin}))[0] is Verdict.UNKNOWN


def test_suspicious_prefixes_are_those_lacking_a_key() -> None:
    listings: dict[str, frozenset[str] | BaseException] = {PREFIX: frozenset({KEY}), "x/Annotations/": frozenset()}
    assert suspicious_prefixes([KEY, None], listings) == []
    assert suspicious_prefixes([KEY, "x/Annotations/1/a-1.0.json"], listings) == ["x/Annotations/"]
    assert suspicious_prefixes(["y/Annotations/1/a-1.0.json"], {"y/Annotations/": RuntimeError()}) == []


@given(st.text(alphabet=st.sampled_from("aB_é+ 1%ü-"), min_size=1, max_size=12))
def test_every_encoding_and_spelling_of_a_run_folder_is_its_twin(name: str) -> None:
    """Whatever the run's name, its percent-, plus-encoded, case-swapped and NFD spellings beside it make a row
    under it unknown, never missing."""
    run = f"{DS}{name}/"
    prefix = f"{run}Reconstructions/VoxelSpacing10.000/Annotations/"
    levels = {
        DS: frozenset({run}),
        run: frozenset({f"{run}Reconstructions/"}),
        f"{run}Reconstructions/": frozenset({f"{prefix[: -len('Annotations/')]}"}),
        prefix[: -len("Annotations/")]: frozenset({prefix}),
    }
    for spelled in {quote(name, safe=""), quote_plus(name), name.swapcase(), unicodedata.normalize("NFD", name)}:
        if spelled == name or spelling_form(spelled) != spelling_form(name):
            continue
        siblings = {**levels, DS: levels[DS] | {f"{DS}{spelled}/"}}
        assert twin_folder(DS, f"{name}/", siblings[DS]) == f"{DS}{spelled}/"
        key = f"{prefix}100/obj-1.0.json"
        candidate = make_candidate(1, f"s3://{B}/{key}", 10001, 7)
        evidence = Evidence({prefix: frozenset({f"{prefix}101/o-1.0.json"})}, siblings=siblings)
        [d] = decide([candidate], evidence, LAYOUT, max_fraction=None).items
        assert d.verdict is Verdict.UNKNOWN, (name, spelled)
