"""Item importers: how each metadata document (or part of one) becomes a row of a portal table.

Each class is a declarative map from JSON paths to columns plus the natural key the row is
upserted on (the portal's own keys, see ``shared/spec/portal-facts.md``)::

    row = AnnotationItem(FoundItem(document, {"run_id": 3, "tomogram_voxel_spacing_id": 7}, key), paths).to_row()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from annotation_reconciler.db_import.base import Converter, ItemImporter, Key, Row
from annotation_reconciler.db_import.converters import to_bool, to_datetime, to_float, to_int, to_str
from annotation_reconciler.errors import MetadataError

METHOD_TYPES = frozenset({"manual", "automated", "hybrid", "simulated"})
SHAPE_TYPE_MAX = 24  # annotation_shape.shape_type is VARCHAR(24)
LINK_TYPE_MAX = 14  # annotation_method_link.link_type is VARCHAR(14)


def file_source(annotation_deposition_id: int, dataset_deposition_id: int | None, portal_standard: bool) -> str:
    """``annotation_file.source`` as the portal derives it: the dataset authors' work when the annotation's
    deposition is its dataset's, else ``portal_standard`` for a file its metadata marks so, else ``community``."""
    if annotation_deposition_id == dataset_deposition_id:
        return "dataset_author"
    return "portal_standard" if portal_standard else "community"


DATES: Mapping[str, tuple[str, ...]] = {
    "deposition_date": ("dates", "deposition_date"),
    "release_date": ("dates", "release_date"),
    "last_modified_date": ("dates", "last_modified_date"),
}
DATE_CONVERTERS = dict.fromkeys(DATES, to_datetime)


class DatasetItem(ItemImporter):
    """``{dataset}/dataset_metadata.json`` -> dataset (the portal keys datasets by their identifier)."""

    table_name = "dataset"
    id_fields = ("id",)
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "id": ("dataset_identifier",),
        "deposition_id": ("deposition_id",),
        "title": ("dataset_title",),
        "description": ("dataset_description",),
        **DATES,
    }
    converters: ClassVar[Mapping[str, Converter]] = {
        "id": to_int,
        "deposition_id": to_int,
        "title": to_str,
        "description": to_str,
        **DATE_CONVERTERS,
    }

    def validate(self) -> None:
        identifier = self.item.data.get("dataset_identifier")
        if str(identifier) != str(self.item.context["dataset_id"]):
            raise MetadataError(
                f"dataset_identifier={identifier!r} is not the dataset {self.item.context['dataset_id']}"
            )
        if not self.item.data.get("dataset_title"):
            raise MetadataError("dataset_title is missing")

    def extra_fields(self) -> Row:
        prefix = self.item.context["prefix"]
        return {"s3_prefix": self.paths.s3_path(prefix), "https_prefix": self.paths.https_path(prefix)}


class RunItem(ItemImporter):
    """``{dataset}/{run}/run_metadata.json`` -> run, named by its folder."""

    table_name = "run"
    id_fields = ("dataset_id", "name")
    context_mappings: ClassVar[Mapping[str, str]] = {"dataset_id": "dataset_id", "name": "name"}

    def validate(self) -> None:
        named = self.item.data.get("run_name")
        if named is not None and named != self.item.context["name"]:
            raise MetadataError(f"run_name={named!r} differs from its folder {self.item.context['name']!r}")

    def extra_fields(self) -> Row:
        prefix = self.item.context["prefix"]
        return {"s3_prefix": self.paths.s3_path(prefix), "https_prefix": self.paths.https_path(prefix)}


class VoxelSpacingItem(ItemImporter):
    """A ``Reconstructions/VoxelSpacing{spacing}/`` folder -> tomogram_voxel_spacing."""

    table_name = "tomogram_voxel_spacing"
    id_fields = ("run_id", "voxel_spacing")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {"voxel_spacing": ("voxel_spacing",)}
    context_mappings: ClassVar[Mapping[str, str]] = {"run_id": "run_id"}
    converters: ClassVar[Mapping[str, Converter]] = {"voxel_spacing": to_float}

    @classmethod
    def key_of(cls, row: Mapping[str, Any]) -> Key:
        return (row["run_id"], round(float(row["voxel_spacing"]), 3))

    def extra_fields(self) -> Row:
        prefix = self.item.context["prefix"]
        return {"s3_prefix": self.paths.s3_path(prefix), "https_prefix": self.paths.https_path(prefix)}


class AnnotationItem(ItemImporter):
    """``Annotations/{NNN}/{object}-{version}.json`` -> annotation, bound to the voxel spacing it lives in."""

    table_name = "annotation"
    id_fields = ("run_id", "deposition_id", "annotation_ingest_id")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "deposition_id": ("deposition_id",),
        "annotation_ingest_id": ("annotation_ingest_id",),
        "annotation_publication": ("annotation_publications",),
        "annotation_method": ("annotation_method",),
        "method_type": ("method_type",),
        "ground_truth_status": ("ground_truth_status",),
        "object_id": ("annotation_object", "id"),
        "object_name": ("annotation_object", "name"),
        "object_description": ("annotation_object", "description"),
        "object_state": ("annotation_object", "state"),
        "object_count": ("object_count",),
        "confidence_precision": ("confidence", "precision"),
        "confidence_recall": ("confidence", "recall"),
        "ground_truth_used": ("confidence", "ground_truth_used"),
        "annotation_software": ("annotation_software",),
        "is_curator_recommended": ("is_curator_recommended",),
        **DATES,
    }
    context_mappings: ClassVar[Mapping[str, str]] = {
        "run_id": "run_id",
        "tomogram_voxel_spacing_id": "tomogram_voxel_spacing_id",
    }
    converters: ClassVar[Mapping[str, Converter]] = {
        "deposition_id": to_int,
        "annotation_ingest_id": to_str,
        "annotation_publication": to_str,
        "annotation_method": to_str,
        "method_type": to_str,
        "ground_truth_status": to_bool,
        "object_id": to_str,
        "object_name": to_str,
        "object_description": to_str,
        "object_state": to_str,
        "object_count": to_int,
        "confidence_precision": to_float,
        "confidence_recall": to_float,
        "ground_truth_used": to_str,
        "annotation_software": to_str,
        "is_curator_recommended": to_bool,
        **DATE_CONVERTERS,
    }

    def validate(self) -> None:
        """Check the whole document, children included, so children importers can trust it."""
        data, problems = self.item.data, []
        if not isinstance(data.get("annotation_ingest_id"), str) or not data["annotation_ingest_id"]:
            problems.append("annotation_ingest_id is missing")
        deposition = data.get("deposition_id")
        if isinstance(deposition, bool) or not isinstance(deposition, int):
            problems.append(f"deposition_id={deposition!r} is not a deposition id")
        if data.get("method_type") is not None and data["method_type"] not in METHOD_TYPES:
            problems.append(f"method_type={data['method_type']!r} is not one of {sorted(METHOD_TYPES)}")
        files = data.get("files")
        if not isinstance(files, list):
            problems.append("files is missing or not a list")
        else:
            for i, entry in enumerate(files):
                problems += self._file_problems(i, entry)
        problems += _list_problems(data, "authors", "name")
        problems += _list_problems(data, "method_links", "link")
        for i, link in enumerate(data.get("method_links") or []):
            if isinstance(link, Mapping) and len(str(link.get("link_type") or "")) > LINK_TYPE_MAX:
                problems.append(f"method_links[{i}].link_type={link.get('link_type')!r} is too long")
        if problems:
            raise MetadataError("; ".join(problems))

    def _file_problems(self, i: int, entry: Any) -> list[str]:
        if not isinstance(entry, Mapping):
            return [f"files[{i}] is not an object"]
        problems = [
            f"files[{i}].{name} is missing"
            for name in ("format", "shape", "path")
            if not isinstance(entry.get(name), str) or not entry[name]
        ]
        if isinstance(entry.get("shape"), str) and len(entry["shape"]) > SHAPE_TYPE_MAX:
            problems.append(f"files[{i}].shape={entry['shape']!r} is too long")
        if isinstance(entry.get("path"), str) and entry["path"] and self.paths.layout.to_key(entry["path"]) is None:
            problems.append(f"files[{i}].path={entry['path']!r} is not a key of bucket {self.paths.layout.bucket}")
        return problems

    def extra_fields(self) -> Row:
        key = self.item.key or ""
        return {"s3_metadata_path": self.paths.s3_path(key), "https_metadata_path": self.paths.https_path(key)}


def _list_problems(data: Mapping[str, Any], field: str, required: str) -> list[str]:
    entries = data.get(field)
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [f"{field} is not a list"]
    return [
        f"{field}[{i}].{required} is missing"
        for i, entry in enumerate(entries)
        if not isinstance(entry, Mapping) or not isinstance(entry.get(required), str) or not entry[required]
    ]


class AnnotationShapeItem(ItemImporter):
    """One distinct ``files[].shape`` of an annotation -> annotation_shape."""

    table_name = "annotation_shape"
    id_fields = ("annotation_id", "shape_type")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {"shape_type": ("shape",)}
    context_mappings: ClassVar[Mapping[str, str]] = {"annotation_id": "annotation_id"}


class AnnotationFileItem(ItemImporter):
    """One ``files[]`` entry -> annotation_file of the voxel spacing being imported.

    Its context carries what the entry alone does not say: the annotation's and the dataset's depositions
    (for ``source``), the total size of the objects under the file's path (``file_size``, :data:`KEEP` when
    S3 could not say) and the alignment its metadata's ``alignment_metadata_path`` names (``alignment_id``).
    """

    table_name = "annotation_file"
    id_fields = ("format", "tomogram_voxel_spacing_id", "annotation_shape_id")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "format": ("format",),
        "is_visualization_default": ("is_visualization_default",),
    }
    context_mappings: ClassVar[Mapping[str, str]] = {
        "annotation_shape_id": "annotation_shape_id",
        "tomogram_voxel_spacing_id": "tomogram_voxel_spacing_id",
        "file_size": "file_size",
        "alignment_id": "alignment_id",
    }
    converters: ClassVar[Mapping[str, Converter]] = {"is_visualization_default": to_bool}

    def extra_fields(self) -> Row:
        key = self.paths.layout.to_key(self.item.data["path"])
        if key is None:  # AnnotationItem.validate refuses such documents first
            raise MetadataError(f"path={self.item.data['path']!r} is not a key of bucket {self.paths.layout.bucket}")
        context = self.item.context
        source = file_source(
            context["annotation_deposition_id"],
            context["dataset_deposition_id"],
            bool(self.item.data.get("is_portal_standard")),
        )
        return {"s3_path": self.paths.s3_path(key), "https_path": self.paths.https_path(key), "source": source}


class AnnotationAuthorItem(ItemImporter):
    """One ``authors[]`` entry -> annotation_author: its position counts from 1 (the portal's list order), and
    a missing or false author status is ``false``, as the portal writes them."""

    table_name = "annotation_author"
    id_fields = ("annotation_id", "name")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "name": ("name",),
        "orcid": ("ORCID",),
        "email": ("email",),
        "affiliation_name": ("affiliation_name",),
        "affiliation_address": ("affiliation_address",),
        "affiliation_identifier": ("affiliation_identifier",),
        "corresponding_author_status": ("corresponding_author_status",),
        "primary_author_status": ("primary_author_status",),
        "kaggle_id": ("kaggle_id",),
    }
    context_mappings: ClassVar[Mapping[str, str]] = {
        "annotation_id": "annotation_id",
        "author_list_order": "author_list_order",
    }
    converters: ClassVar[Mapping[str, Converter]] = {
        "orcid": to_str,
        "email": to_str,
        "affiliation_name": to_str,
        "affiliation_address": to_str,
        "affiliation_identifier": to_str,
        "corresponding_author_status": to_bool,
        "primary_author_status": to_bool,
        "kaggle_id": to_str,
    }

    def extra_fields(self) -> Row:
        data = self.item.data
        return {
            "corresponding_author_status": to_bool(data.get("corresponding_author_status") or False),
            "primary_author_status": to_bool(data.get("primary_author_status") or False),
        }


class AnnotationMethodLinkItem(ItemImporter):
    """One ``method_links[]`` entry -> annotation_method_link."""

    table_name = "annotation_method_link"
    id_fields = ("annotation_id", "link")
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "link": ("link",),
        "link_type": ("link_type",),
        "name": ("custom_name",),
    }
    context_mappings: ClassVar[Mapping[str, str]] = {"annotation_id": "annotation_id"}
    converters: ClassVar[Mapping[str, Converter]] = {"link_type": to_str, "name": to_str}
