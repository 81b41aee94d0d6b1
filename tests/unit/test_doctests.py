"""The examples (``>>>``) in the docstrings of the pure modules run as tests: a stale example fails CI."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "annotation_reconciler.db.arrays",
    "annotation_reconciler.db.urls",
    "annotation_reconciler.fanout.messages",
    "annotation_reconciler.names",
    "annotation_reconciler.errors",
    "annotation_reconciler.rules.notifications",
    "annotation_reconciler.rules.guards",
    "annotation_reconciler.rules.listings",
    "annotation_reconciler.rules.ordering",
    "annotation_reconciler.rules.paths",
    "annotation_reconciler.rules.prefix_retry",
    "annotation_reconciler.rules.scope",
    "annotation_reconciler.settings",
    "annotation_reconciler.rules.spelling",
    "annotation_reconciler.service.moves",
    "annotation_reconciler.cli.common",
    "annotation_reconciler.rules.plural",
    "annotation_reconciler.ledger.status",
    "annotation_reconciler.ledger.waiting",
)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples: take it off MODULES"
    assert result.failed == 0
