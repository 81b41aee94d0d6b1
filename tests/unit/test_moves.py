"""moves.natural_key_of, pure: the natural key a metadata document names, as the importer reads it, or None."""

from __future__ import annotations

from typing import Any

import pytest

from annotation_reconciler.service.moves import natural_key_of


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"deposition_id": 301, "annotation_ingest_id": "101-membrane-1.0"}, (301, "101-membrane-1.0")),
        ({"deposition_id": "301", "annotation_ingest_id": "a"}, (301, "a")),
        ({"deposition_id": 301, "annotation_ingest_id": ""}, None),  # an empty ingest id names nothing
        ({"deposition_id": 301, "annotation_ingest_id": 101}, None),  # not a string
        ({"deposition_id": 301, "annotation_ingest_id": ["a"]}, None),
        ({"deposition_id": None, "annotation_ingest_id": "a"}, None),
        ({"deposition_id": 3.5, "annotation_ingest_id": "a"}, None),
        ({"deposition_id": True, "annotation_ingest_id": "a"}, None),  # a bool is no deposition id
        ({"deposition_id": "x301", "annotation_ingest_id": "a"}, None),
        ({"annotation_ingest_id": "a"}, None),
        (["deposition_id", "annotation_ingest_id"], None),
    ],
)
def test_the_natural_key_a_document_names(document: Any, key: tuple[int, str] | None) -> None:
    assert natural_key_of(document) == key
