"""The annotations an import leaves alone: a run's rows without a voxel spacing (the portal's legacy rows), reported
with why, never deleted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class LegacyAnnotation:
    """An annotation with a NULL voxel spacing that the importer left alone (reported, never deleted)."""

    id: int
    run_id: int
    annotation_ingest_id: str | None
    s3_metadata_path: str
    voxel_spacing_ids: tuple[int, ...]

    @property
    def reason(self) -> str:
        if not self.voxel_spacing_ids:
            return "no annotation files: its voxel spacing cannot be told"
        spacings = ", ".join(str(v) for v in self.voxel_spacing_ids)
        return f"files only in voxel spacings not imported ({spacings})"


_LEGACY = text("""
SELECT a.id, a.run_id, a.annotation_ingest_id, a.s3_metadata_path,
       ARRAY(SELECT DISTINCT f.tomogram_voxel_spacing_id
             FROM annotation_file f JOIN annotation_shape s ON s.id = f.annotation_shape_id
             WHERE s.annotation_id = a.id AND f.tomogram_voxel_spacing_id IS NOT NULL
             ORDER BY 1) AS voxel_spacing_ids
FROM annotation a
WHERE a.run_id = :run_id AND a.tomogram_voxel_spacing_id IS NULL
ORDER BY a.id
""")


def legacy_annotations(conn: Connection, run_id: int) -> list[LegacyAnnotation]:
    """The run's annotations still without a voxel spacing (run it after importing the run's voxel spacings)."""
    return [
        LegacyAnnotation(r.id, r.run_id, r.annotation_ingest_id, r.s3_metadata_path, tuple(r.voxel_spacing_ids or ()))
        for r in conn.execute(_LEGACY, {"run_id": run_id})
    ]


__all__ = ["LegacyAnnotation", "legacy_annotations"]
