"""Candidates built from the fields tests name: the row's (id, stored path, dataset, run), then its ledger row's."""

from __future__ import annotations

from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate


def candidate(
    aid: int,
    stored_path: str,
    dataset: int | None = None,
    run: int | None = None,
    *,
    quarantine_id: int | None = None,
    quarantined_path: str | None = None,
    quarantined_key: str | None = None,
    approved: bool = False,
    gone: bool = False,
) -> Candidate:
    """``candidate(1, path, 10001, 7, quarantine_id=5, ...)``: the row as read, and its open ledger row."""
    return Candidate(
        AnnotationRef(aid, stored_path, dataset, run),
        quarantine_id=quarantine_id,
        quarantined_path=quarantined_path,
        quarantined_key=quarantined_key,
        approved=approved,
        gone=gone,
    )
