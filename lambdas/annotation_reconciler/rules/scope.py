"""Which annotations an operation covers: a dataset, some runs, a voxel spacing, or everything.

A pure value shared by the service (scans, shards, the cleanup command) and the reads that turn it
into one query (``portal.annotation_rows``, ``ledger.resurrections``). The fields combine with AND; a
voxel spacing also covers the legacy rows of its run (NULL ``tomogram_voxel_spacing_id``) whose files
lie in it::

    >>> Scope().is_everything, Scope.of(run_id=7)
    (True, Scope(dataset_id=None, run_ids=(7,), voxel_spacing_id=None))
    >>> Scope.of(dataset_id=10001, voxel_spacing_id=3).describe()
    {'dataset_id': 10001, 'voxel_spacing_id': 3}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Scope"]


@dataclass(frozen=True)
class Scope:
    """Which annotations an operation covers; the fields combine with AND (None: no condition)."""

    dataset_id: int | None = None
    run_ids: tuple[int, ...] | None = None
    voxel_spacing_id: int | None = None

    @classmethod
    def of(
        cls, *, dataset_id: int | None = None, run_id: int | None = None, voxel_spacing_id: int | None = None
    ) -> Scope:
        """The scope of the command-line options ``--dataset-id``, ``--run-id`` and ``--voxel-spacing-id``."""
        return cls(dataset_id, (run_id,) if run_id is not None else None, voxel_spacing_id)

    @property
    def is_everything(self) -> bool:
        return self.dataset_id is None and self.run_ids is None and self.voxel_spacing_id is None

    def describe(self) -> dict[str, Any]:
        """The conditions that are set, for reports and logs."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items() if v is not None}
