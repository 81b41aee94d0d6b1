"""S3 requests in flight at once (RECONCILER_S3_CONCURRENCY): bounded, deterministic, an error stays unknown,
the time budget stops cleanly; on moto and the real PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest
from sqlalchemy import text

from annotation_reconciler.errors import StorageError
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.lifecycle import Verdict
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import SAFETY_MARGIN_S
from annotation_reconciler.storage import S3Storage
from support.faults import InFlight, inject_at
from support.world import BUCKET, World

RUNS = 12  # one dataset of 12 runs: 12 Annotations/ prefixes of 3 annotations each


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=1, runs_per_dataset=RUNS, annotations_per_voxel_spacing=3, zarr_chunks_per_annotation=2)


def prefixes(world: World) -> list[str]:
    return sorted({metadata_folder(k) for k in world.portal.metadata_keys})


def _runs(world: World) -> set[str]:
    return {k.split("/")[1] for k in world.portal.metadata_keys}


def fresh_client() -> Any:
    """A client of its own, so that faults and probes attached to it touch nothing else."""
    return boto3.client("s3", region_name="us-west-2")


def surveyed(world: World, concurrency: int, s3: Any = None) -> tuple[Any, ...]:
    found = world.reconciler(s3=s3, RECONCILER_S3_CONCURRENCY=str(concurrency)).survey(Scope())
    return (
        found.annotations,
        found.prefixes_listed,
        found.resume_after,
        [(d.candidate.annotation_id, d.verdict, d.key, d.reason) for d in found.decisions.items],
        [str(e) for e in found.errors],
    )


def test_list_many_returns_sorted_listings_equal_to_one_at_a_time(world: World) -> None:
    storage = S3Storage(world.s3, BUCKET)
    wanted = prefixes(world)
    one_by_one = {p: frozenset(storage.list_keys(p)) for p in wanted}
    for concurrency in (1, 4, 64):
        listings = storage.list_many(reversed(wanted), concurrency=concurrency)
        assert list(listings) == wanted  # sorted, whatever order given or answered in
        assert listings == one_by_one


def test_requests_in_flight_are_bounded_by_the_concurrency(world: World) -> None:
    """The probe holds each request half a second unless all RUNS are in flight at once, so a bounded listing of n
    prefixes takes n / concurrency half-seconds. At concurrency 1, 3 prefixes show the bound as well as 12 did (a
    second request beside the first, or the two left sent at once after the first answer, is the bug) in 1.5 s
    instead of 6 s; at 4, the 12 prefixes stay: 4 of them could be sent together after the first wave without
    passing the bound, 8 cannot."""
    for concurrency, listed, peak in ((1, 3, 1), (4, RUNS, 4), (64, RUNS, RUNS)):
        client = fresh_client()
        probe = InFlight.attach(client, gather=RUNS, timeout_s=0.5)  # waits for more than any bound allows
        S3Storage(client, BUCKET).list_many(prefixes(world)[:listed], concurrency=concurrency)
        assert (probe.total, probe.peak) == (listed, peak)


def test_an_error_at_one_prefix_stays_unknown_while_the_others_are_listed(world: World) -> None:
    wanted = prefixes(world)
    broken = wanted[5]
    client = fresh_client()
    faults = inject_at(client, "ListObjectsV2", broken)
    listings = S3Storage(client, BUCKET).list_many(wanted, concurrency=8)
    assert faults.injected == 1 and list(listings) == wanted
    assert isinstance(listings[broken], StorageError) and listings[broken].code == "AccessDenied"
    good = S3Storage(world.s3, BUCKET)
    assert all(listings[p] == frozenset(good.list_keys(p)) for p in wanted if p != broken)


def test_concurrency_is_validated() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        S3Storage(object(), BUCKET).list_many(["a/"], concurrency=0)  # type: ignore[arg-type]


def test_time_budget_stops_new_listings_and_keeps_a_sorted_prefix(world: World) -> None:
    wanted = prefixes(world)
    checks = iter([100.0] * 5)
    listings = S3Storage(world.s3, BUCKET).list_many(
        wanted, concurrency=3, remaining_seconds=lambda: next(checks, 1.0), margin_s=30.0
    )
    assert list(listings) == wanted[:5]  # the five started before the budget ran low, nothing after


def test_survey_is_the_same_at_concurrency_1_and_n(world: World) -> None:
    world.delete(world.portal.metadata_keys[0], world.portal.metadata_keys[7])
    emptied = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_004"]
    world.delete(*emptied)
    one = surveyed(world, 1)
    verdicts = Counter(v for _, v, _, _ in one[3])
    # two lone deletions and a prefix emptied of metadata in a healthy dataset (ordinary since issue 16: the
    # dataset folder is asked about, at the same concurrency)
    assert verdicts[Verdict.STALE] == 5 and verdicts[Verdict.RELEASE] > 0
    for concurrency in (4, 12, 64):
        assert surveyed(world, concurrency) == one


def test_survey_error_at_one_prefix_is_unknown_and_the_rest_is_judged(world: World) -> None:
    lost = world.portal.annotations[0]
    world.delete(lost.metadata_key)
    broken = prefixes(world)[-1]
    client = fresh_client()
    inject_at(client, "ListObjectsV2", broken)
    result = world.reconciler(s3=client, RECONCILER_S3_CONCURRENCY="8").scan_shard(Scope())
    in_broken = sorted(world.ids[a.metadata_key] for a in world.portal.annotations if a.metadata_key.startswith(broken))
    assert sorted(u.ref.id for u in result.unknown) == in_broken
    assert result.quarantined == [world.ids[lost.metadata_key]]
    assert len(result.errors) == 1 and "AccessDenied" in result.errors[0]
    assert world.ledger() == {world.ids[lost.metadata_key]: "quarantined"}  # nothing of the broken prefix


def test_scan_cut_by_the_budget_resumes_to_the_same_verdicts(world: World) -> None:
    lost = [world.portal.annotations[1].metadata_key, world.portal.annotations[-1].metadata_key]
    world.delete(*lost)
    unmappable = world.ids[world.portal.annotations[4].metadata_key]
    with world.engine.begin() as conn:  # a stored path no key can be made of: judged (unknown) once, in the first run
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = 's3://another-bucket/x-1.0.json' WHERE id = :i"),
            {"i": unmappable},
        )
    reconciler = world.reconciler(RECONCILER_S3_CONCURRENCY="4")
    checks = iter([SAFETY_MARGIN_S + 60] * 7)
    first = reconciler.scan_shard(Scope(), remaining_seconds=lambda: next(checks, SAFETY_MARGIN_S - 1))
    assert not first.complete and first.prefixes_listed == 7 and first.resume_after == prefixes(world)[6]
    assert first.quarantined == [world.ids[lost[0]]]
    assert [u.ref.id for u in first.unknown] == [unmappable]
    second = reconciler.scan_shard(Scope(), resume_after=first.resume_after)
    assert second.complete and second.prefixes_listed == RUNS - 7
    assert second.quarantined == [world.ids[lost[1]]]
    assert second.unknown == []  # the rows of the prefixes the first run listed are not judged again
    assert first.present + second.present == 3 * RUNS - 3


def test_purge_recheck_at_concurrency_n_treats_an_error_as_unknown(world: World) -> None:
    keys = world.portal.metadata_keys  # four per Annotations/ prefix
    lone, broken, beside, present = keys[0], keys[4], keys[5], keys[9]
    world.delete(lone, broken, beside)
    client = fresh_client()
    inject_at(client, "ListObjectsV2", metadata_folder(broken))
    presence = world.reconciler(s3=client, RECONCILER_S3_CONCURRENCY="8").check_presence(
        [lone, broken, beside, present]
    )
    assert presence == {lone: False, broken: None, beside: None, present: True}


# --- follow-up requests (``then``): the evidence around a prefix, asked for as its listing arrives ------------------


def _requests(client: Any) -> list[tuple[str, str | None]]:
    """The (Prefix, Delimiter) of every LIST ``client`` sends, in the order sent."""
    sent: list[tuple[str, str | None]] = []
    client.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2",
        lambda params, **_: sent.append((params["Prefix"], params.get("Delimiter"))),
    )
    return sent


def test_a_follow_up_runs_right_after_its_answer_one_at_a_time_and_beside_the_rest_in_a_window(world: World) -> None:
    wanted = prefixes(world)
    for concurrency in (1, 4):
        client = fresh_client()
        sent = _requests(client)
        storage = S3Storage(client, BUCKET)
        folders: dict[str, Any] = {}

        def then(prefix: str, answer: Any, storage: S3Storage = storage, folders: dict[str, Any] = folders) -> Any:
            parent = prefix.rsplit("/", 2)[0] + "/"  # the voxel spacing folder
            return [lambda: folders.setdefault(parent, storage.list_folders(parent))]

        listings = storage.list_many(wanted, concurrency=concurrency, then=then)
        assert listings == {p: frozenset(S3Storage(world.s3, BUCKET).list_keys(p)) for p in wanted}
        assert folders == {p.rsplit("/", 2)[0] + "/": frozenset({p}) for p in wanted}
        assert len(sent) == 2 * len(wanted)
        if concurrency == 1:  # each follow-up straight after its own listing
            assert sent == [r for p in wanted for r in ((p, None), (p.rsplit("/", 2)[0] + "/", "/"))]
        else:  # the follow-ups take free slots before the prefixes not yet started: none waits for the last prefix
            last = sent.index((wanted[-1], None))
            assert sum(1 for _, delimiter in sent[:last] if delimiter) >= len(wanted) - 2 * concurrency


def test_the_budget_stops_new_listings_but_never_the_follow_ups_of_those_listed(world: World) -> None:
    wanted = prefixes(world)
    storage = S3Storage(world.s3, BUCKET)
    asked: list[str] = []
    checks = iter([100.0] * 5)
    listings = storage.list_many(
        wanted,
        concurrency=3,
        remaining_seconds=lambda: next(checks, 1.0),
        margin_s=30.0,
        then=lambda prefix, answer: [lambda: asked.append(prefix)],
    )
    assert list(listings) == wanted[:5] and sorted(asked) == wanted[:5]


def test_evidence_gathered_while_listing_equals_the_evidence_gathered_after_it(world: World) -> None:
    """``SurroundingsAsYouGo`` asks S3 the same requests as ``dataset_neighbours`` after the listing, and gets the
    same answers: the folders of every level of a prefix that lacks a row's key (a twin among them), the dataset
    folder of a prefix emptied of metadata, and an error where S3 failed."""
    from annotation_reconciler.rules.listings import suspicious_prefixes
    from annotation_reconciler.service.evidence import SurroundingsAsYouGo, dataset_neighbours

    keys = world.portal.metadata_keys
    lost = keys[0]
    world.delete(lost, *[k for k in keys if metadata_folder(k) == prefixes(world)[3]])  # one gone, one prefix emptied
    run = lost.split("/")[1]
    world.restore(lost.replace(f"/{run}/", f"/{run.lower()}/", 1))  # a twin of the run folder
    failing = metadata_folder(keys[-1])
    world.delete(keys[-1])
    for concurrency in (1, 8):
        answers = []
        for during in (True, False):
            client = fresh_client()
            inject_at(client, "ListObjectsV2", failing.rsplit("/", 2)[0] + "/")  # a parent folder of one level fails
            sent = _requests(client)
            storage = S3Storage(client, BUCKET)
            around = SurroundingsAsYouGo(storage, keys)
            listings = storage.list_many(
                prefixes(world), concurrency=concurrency, then=around.follow if during else None
            )
            if during:
                found = around.surroundings()
            else:
                suspicious = suspicious_prefixes(keys, listings)
                found = dataset_neighbours(storage, listings, concurrency=concurrency, suspicious=suspicious)
            answers.append((found, sorted(sent, key=repr)))
        (gathered, sent_during), (after, sent_after) = answers
        assert sent_during == sent_after
        assert dict(gathered.neighbours) == dict(after.neighbours)
        assert {p: str(v) for p, v in gathered.siblings.items()} == {p: str(v) for p, v in after.siblings.items()}
        assert any(isinstance(v, StorageError) for v in gathered.siblings.values())
        assert gathered.neighbours and list(gathered.neighbours.values()) == [True]
        assert any(
            f"/{run.lower()}/" in f
            for folders in gathered.siblings.values()
            if isinstance(folders, frozenset)
            for f in folders
        )


def test_the_request_threads_are_started_once_and_kept_between_calls(world: World) -> None:
    """Starting and joining RECONCILER_S3_CONCURRENCY threads per call cost a few milliseconds a shard: the storage
    keeps one pool, grown to the largest concurrency asked, and every call's requests have finished on return."""
    storage = S3Storage(world.s3, BUCKET)
    wanted = prefixes(world)
    first = storage.list_many(wanted, concurrency=4)
    pool = storage._pool
    assert pool is not None and storage._pool_size == 4
    started = set(pool._threads)
    for _ in range(3):
        assert storage.list_many(wanted, concurrency=4) == first
        assert storage._pool is pool and set(pool._threads) == started and len(started) <= 4
    assert storage.list_many(wanted, concurrency=8) == first and storage._pool_size == 8 and storage._pool is not pool
    assert storage.folders_many(["10001/"], concurrency=2) == {"10001/": frozenset(f"10001/{r}/" for r in _runs(world))}
    assert storage._pool_size == 8 and len(storage._pool._threads) <= 8
