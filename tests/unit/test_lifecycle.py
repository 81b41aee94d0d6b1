"""lifecycle.py: the pure decisions (listing plan, verdicts, purge plan and guard, event collapsing)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate, Evidence, Unknown, Verdict, decide, resolve
from annotation_reconciler.rules.listings import canonical, listing_prefixes, metadata_folder, prefixes_to_list
from annotation_reconciler.rules.paths import BucketLayout
from support.candidates import candidate

B = "cryoet-data-portal-public"
LAYOUT = BucketLayout.from_prefix(B, f"s3://{B}/")
VS = "10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/"
VS2 = "10001/TS_2/Reconstructions/VoxelSpacing10.000/Annotations/"
DATA = f"{VS}100/100-obj0-1.0_point.ndjson"


def key(n: int, vs: str = VS) -> str:
    return f"{vs}{100 + n}/obj{n}-1.0.json"


def path(k: str) -> str:
    return f"s3://{B}/{k}"


def fresh(aid: int, k: str, dataset: int | None = 1, approved: bool = False) -> Candidate:
    return candidate(aid, path(k), dataset, 7, approved=approved)


def quarantined(aid: int, k: str, now: str | None = None, qkey: str | None = "same", **kw: object) -> Candidate:
    """A candidate with an open ledger row quarantined under ``k``; its current path is ``now`` (default: the same)."""
    return candidate(
        aid,
        path(now if now is not None else k),
        1,
        7,
        quarantine_id=1000 + aid,
        quarantined_path=path(k),
        quarantined_key=k if qkey == "same" else qkey,
        **kw,  # type: ignore[arg-type]
    )


def one(candidate: Candidate, listings: dict[str, frozenset[str] | BaseException], **kw: object) -> tuple[Verdict, str]:
    kw.setdefault("max_fraction", None)
    decisions = decide([candidate], Evidence(listings, {1: 0}, {1: 100}), LAYOUT, **kw)  # type: ignore[arg-type]
    [decision] = decisions.items
    return decision.verdict, decision.reason


def test_present_missing_failed_unlisted_and_unmappable() -> None:
    listing = frozenset({key(0), DATA, key(5)})
    assert one(fresh(1, key(0)), {VS: listing}) == (Verdict.RELEASE, "metadata present in S3")
    assert one(fresh(2, key(1)), {VS: listing})[0] is Verdict.STALE
    verdict, why = one(fresh(3, key(1)), {VS: RuntimeError("SlowDown")})
    assert verdict is Verdict.UNKNOWN and "SlowDown" in why
    verdict, why = one(fresh(4, key(1)), {VS2: listing})
    assert verdict is Verdict.UNKNOWN and "not under a completely listed prefix" in why
    verdict, why = one(candidate(5, f"s3://other-bucket/{key(1)}", 1), {VS: listing})
    assert verdict is Verdict.UNKNOWN and "does not map" in why
    verdict, why = one(candidate(6, path(f"{VS}100/x_globalcaption.json"), 1), {VS: listing})
    assert verdict is Verdict.UNKNOWN and "not an annotation metadata key" in why


def test_a_listing_of_another_prefix_never_proves_absence() -> None:
    """The importer of voxel spacing B listed B: a legacy row whose metadata lies under A is not judged."""
    verdict, why = one(fresh(1, key(1, VS2)), {VS: frozenset({key(0)})})
    assert verdict is Verdict.UNKNOWN and VS2 in why


@pytest.mark.parametrize(
    ("stored", "listed"),
    [
        ("ribosome-prot\u00e9ine-1.0.json", "ribosome-prote\u0301ine-1.0.json"),  # NFC row, NFD object
        ("ribosome-prote\u0301ine-1.0.json", "ribosome-prot\u00e9ine-1.0.json"),  # NFD row, NFC object
        ("ribosome-\ufb01ne-1.0.json", "ribosome-fine-1.0.json"),  # NFKC: a ligature
        ("Ribosome-1.0.json", "ribosome-1.0.json"),  # case
        ("STRASSE-1.0.json", "stra\u00dfe-1.0.json"),  # full case folding
    ],
)
def test_a_key_spelled_differently_from_a_listed_one_is_unknown(stored: str, listed: str) -> None:
    verdict, why = one(fresh(1, f"{VS}100/{stored}"), {VS: frozenset({f"{VS}100/{listed}", DATA})})
    assert verdict is Verdict.UNKNOWN and "differs only in spelling" in why


def test_a_unicode_folder_needs_the_listings_of_every_spelling() -> None:
    nfc = "10001/TS_\u00fc/Reconstructions/VoxelSpacing10.000/Annotations/"
    nfd = "10001/TS_u\u0308/Reconstructions/VoxelSpacing10.000/Annotations/"
    row = fresh(1, f"{nfd}100/obj-1.0.json")
    assert listing_prefixes(f"{nfd}100/obj-1.0.json") == tuple(sorted({nfc, nfd}))
    verdict, why = one(row, {nfd: frozenset({f"{nfd}101/other-1.0.json"})})
    assert verdict is Verdict.UNKNOWN and "not under a completely listed prefix" in why
    verdict, _ = one(row, {nfd: frozenset({f"{nfd}101/other-1.0.json"}), nfc: frozenset({f"{nfc}100/obj-1.0.json"})})
    assert verdict is Verdict.UNKNOWN
    verdict, _ = one(row, {nfd: frozenset({f"{nfd}101/other-1.0.json"}), nfc: frozenset()})
    assert verdict is Verdict.STALE


def test_canonical_meets_every_normal_form_and_case() -> None:
    word = "Prot\u00e9ine\ufb01"
    forms = {unicodedata.normalize(f, word) for f in ("NFC", "NFD", "NFKC", "NFKD")} | {word.upper(), word.lower()}
    assert len({canonical(f) for f in forms}) == 1
    assert canonical("a-1.0.json") != canonical("a-1.1.json")


def test_the_current_row_not_the_ledger_copy_is_judged() -> None:
    """Metadata moved to a new key and the row was rewritten: the old key's absence deletes nothing."""
    moved = key(0).replace("/100/", "/105/")
    verdict, why = one(quarantined(1, key(0), now=moved), {VS: frozenset({DATA})})
    assert verdict is Verdict.RELEASE and "stored path changed" in why and moved in why
    gone = candidate(1, path(key(0)), 1, quarantine_id=5, quarantined_path=path(key(0)), gone=True)
    verdict, why = one(gone, {VS: frozenset()})
    assert (verdict, why) == (Verdict.RELEASE, "the annotation row no longer exists")


def test_configuration_drift_is_unknown_and_names_both_keys() -> None:
    """Quarantined as 10001/… under one root; today's settings put the same stored path under another."""
    relative = key(0)
    row = candidate(1, relative, 1, quarantine_id=9, quarantined_path=relative, quarantined_key=relative)
    drifted = BucketLayout.from_prefix(B, f"s3://{B}/staging/")
    wrong = f"staging/{relative}"
    decisions = decide([row], Evidence({metadata_folder(wrong): frozenset()}), drifted, max_fraction=None)
    [d] = decisions.items
    assert d.verdict is Verdict.UNKNOWN and "configuration drift" in d.reason
    assert repr(relative) in d.reason and repr(wrong) in d.reason
    verdict, why = one(quarantined(1, key(0), qkey=None), {VS: frozenset({DATA})})
    assert verdict is Verdict.UNKNOWN and "configuration drift" in why


def test_an_empty_prefix_holds_new_findings_but_not_quarantined_or_approved_rows() -> None:
    only_data = {VS: frozenset({DATA})}
    verdict, why = one(fresh(1, key(0)), only_data)
    assert verdict is Verdict.HELD and "no annotation metadata" in why
    assert one(fresh(1, key(0)), {VS: frozenset()})[0] is Verdict.HELD
    assert one(fresh(1, key(0), approved=True), only_data)[0] is Verdict.STALE
    assert one(quarantined(1, key(0)), only_data)[0] is Verdict.STALE


@pytest.mark.parametrize(("others", "total", "held"), [(9, 100, False), (10, 100, True), (0, 0, True)])
def test_guard_threshold(others: int, total: int, held: bool) -> None:
    listing = {VS: frozenset({key(5)})}
    decisions = decide([fresh(1, key(0))], Evidence(listing, {1: others}, {1: total}), LAYOUT, max_fraction=0.1)
    [d] = decisions.items
    assert (d.verdict is Verdict.HELD) is held and (d.verdict is Verdict.STALE) is not held
    assert (decisions.held_datasets == {1: (others + 1, total)}) is held


@pytest.mark.parametrize(("totals", "verdict"), [({}, Verdict.HELD), ({1: 0}, Verdict.HELD), ({1: 1}, Verdict.STALE)])
def test_guard_at_fraction_one_holds_only_a_dataset_of_unknown_size(
    totals: dict[int | None, int], verdict: Verdict
) -> None:
    """Even with the guard wide open, a dataset whose size is not known (no row counted) is held."""
    decisions = decide([fresh(1, key(0))], Evidence({VS: frozenset({key(5)})}, {}, totals), LAYOUT, max_fraction=1.0)
    assert [d.verdict for d in decisions.items] == [verdict]


def test_guard_counts_every_deletion_of_the_call_and_lets_approved_rows_through() -> None:
    listing = {VS: frozenset({key(9)})}
    rows = [fresh(1, key(0), approved=True), fresh(2, key(1)), fresh(3, key(2))]
    decisions = decide(rows, Evidence(listing, {1: 0}, {1: 20}), LAYOUT, max_fraction=0.1)
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.STALE)] == [1]
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.HELD)] == [2, 3]
    assert decisions.held_datasets == {1: (3, 20)}


def test_guard_is_per_dataset_and_off_without_a_fraction() -> None:
    listing = {VS: frozenset({key(9)})}
    rows = [fresh(1, key(0), dataset=1), fresh(2, key(1), dataset=2)]
    decisions = decide(rows, Evidence(listing, {1: 0, 2: 9}, {1: 100, 2: 10}), LAYOUT, max_fraction=0.1)
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.STALE)] == [1]
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.HELD)] == [2]
    decisions = decide(rows, Evidence(listing), LAYOUT, max_fraction=None)
    assert len(decisions.of(Verdict.STALE)) == 2


def test_prefixes_to_list_covers_every_spelling_once() -> None:
    assert prefixes_to_list([key(0), key(1), key(0, VS2)]) == sorted({VS, VS2})


@given(
    st.lists(st.sampled_from(["a", "B", "\u00e9", "e\u0301", "\ufb01", "\u00df", "-", "."]), min_size=1).map("".join)
)
def test_no_spelling_of_a_listed_key_is_ever_deleted(name: str) -> None:
    listed = f"{VS}100/{name}1.0.json"
    spellings = {unicodedata.normalize(f, listed) for f in ("NFC", "NFD", "NFKC", "NFKD")}
    spellings |= {listed.replace(name, name.upper()), listed.replace(name, name.lower())}
    for spelling in spellings:
        row = fresh(1, spelling)
        listings = {p: frozenset({listed, DATA}) for p in listing_prefixes(spelling)}
        assert one(row, listings)[0] in (Verdict.RELEASE, Verdict.UNKNOWN)


def test_metadata_folder() -> None:
    assert metadata_folder(key(0)) == VS


def test_resolve_says_which_row_cannot_be_verified() -> None:
    ref = AnnotationRef(7, f"s3://another-bucket/{key(0)}")
    unmappable = resolve(ref, LAYOUT)
    not_metadata = resolve(AnnotationRef(8, f"s3://{B}/{VS}100/x_globalcaption.json"), LAYOUT)
    assert isinstance(unmappable, Unknown) and unmappable.ref == ref
    assert isinstance(not_metadata, Unknown) and not_metadata.ref.id == 8


@pytest.mark.parametrize(
    "unknown_evidence",
    [
        pytest.param({VS2: RuntimeError("503 SlowDown")}, id="listing-failed"),
        pytest.param({}, id="prefix-not-listed"),
        pytest.param({VS2: frozenset(key(i, VS2).replace("obj", "OBJ") for i in range(6))}, id="twins-in-listing"),
    ],
)
def test_guard_counts_the_dataset_not_the_verdicts(unknown_evidence: dict[str, frozenset[str] | BaseException]) -> None:
    """Issue 25 (3): every candidate of a dataset that is not released counts as going, whatever its verdict in this
    run. 2 rows provably absent and 6 rows S3 could not judge: 8 of 8 would go, so the 2 are held, not deleted."""
    rows = [quarantined(i, key(i)) for i in range(2)] + [quarantined(10 + i, key(i, VS2)) for i in range(6)]
    listings: dict[str, frozenset[str] | BaseException] = {VS: frozenset({DATA}), **unknown_evidence}
    decisions = decide(rows, Evidence(listings, {}, {1: 8}), LAYOUT, max_fraction=0.5)
    assert decisions.of(Verdict.STALE) == []
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.HELD)] == [0, 1]
    assert len(decisions.of(Verdict.UNKNOWN)) == 6 and decisions.held_datasets == {1: (8, 8)}


def test_guard_does_not_count_the_candidates_found_present() -> None:
    """The count excludes only what this run releases: 2 absent of 8, 6 present again, is 2 of 8 (ordinary)."""
    rows = [quarantined(i, key(i)) for i in range(2)] + [quarantined(10 + i, key(i, VS2)) for i in range(6)]
    listings: dict[str, frozenset[str] | BaseException] = {
        VS: frozenset({DATA}),
        VS2: frozenset(key(i, VS2) for i in range(6)),
    }
    decisions = decide(rows, Evidence(listings, {}, {1: 8}), LAYOUT, max_fraction=0.5)
    assert [d.candidate.annotation_id for d in decisions.of(Verdict.STALE)] == [0, 1]
    assert len(decisions.of(Verdict.RELEASE)) == 6 and decisions.held_datasets == {}


@given(
    st.lists(
        st.text(alphabet=st.sampled_from("aZ_1.é\u0301\u00c5\u212b\ufb01"), min_size=1, max_size=4),
        min_size=7,
        max_size=7,
    )
)
def test_listing_prefixes_are_the_folders_of_every_unicode_spelling_ascii_or_not(parts: list[str]) -> None:
    key = "/".join(parts) + "-1.0.json"
    forms = {key, *(unicodedata.normalize(form, key) for form in ("NFC", "NFD", "NFKC", "NFKD"))}
    assert listing_prefixes(key) == tuple(sorted({metadata_folder(k) for k in forms}))


def test_the_guard_floor_is_the_one_decide_is_given() -> None:
    """Two of a dataset of five fresh findings pass the shipped floor (2) at fraction 0.1; a floor of 1 holds them."""
    listing = {VS: frozenset({key(9)})}
    rows = [fresh(1, key(0)), fresh(2, key(1))]
    evidence = Evidence(listing, {1: 0}, {1: 5})
    assert len(decide(rows, evidence, LAYOUT, max_fraction=0.1).of(Verdict.STALE)) == 2
    held = decide(rows, evidence, LAYOUT, max_fraction=0.1, floor=1)
    assert len(held.of(Verdict.HELD)) == 2 and held.held_datasets == {1: (2, 5)}


def test_only_a_moved_decision_names_where_it_moved() -> None:
    """A candidate move found for a row that is not moved (its key is listed, or a twin makes it unknown) is not
    the decision's ``moved_to``; a moved row's is the untracked key that carries its natural key."""
    other = f"{VS}105/obj0-renamed-1.0.json"
    listing = {VS: frozenset({key(0), other, key(9).upper()})}
    rows = [fresh(1, key(0)), fresh(2, key(9)), fresh(3, key(3))]
    evidence = Evidence(listing, {1: 0}, {1: 100}, moved={1: other, 2: other, 3: other})
    decisions = decide(rows, evidence, LAYOUT, max_fraction=None)
    assert [(d.candidate.annotation_id, d.verdict, d.moved_to) for d in decisions.items] == [
        (1, Verdict.RELEASE, None),
        (2, Verdict.UNKNOWN, None),
        (3, Verdict.MOVED, other),
    ]
