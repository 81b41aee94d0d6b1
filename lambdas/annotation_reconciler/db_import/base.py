"""The import framework: finders read S3, item importers map metadata to rows, integrated importers upsert.

A finder returns the items it found *and* whether it saw everything it looked for; an item
importer maps one item to one row; an integrated importer upserts the rows on their natural
key inside the caller's transaction and deletes its unused siblings only when the finder was
complete::

    found = importer.find()                                  # S3 I/O, outside the transaction
    with engine.begin() as conn:
        outcome = importer.import_items(conn, found)         # SELECT in scope, INSERT, UPDATE
        importer.cleanup_unused_items(conn, outcome)         # only if clean_up_siblings and complete

An S3 error, a malformed document or a duplicate natural key is an :class:`ImportProblem`: it is
reported and it turns the cleanup off, never into "nothing found".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sqlalchemy import ARRAY, Connection, Integer, Table, any_, bindparam, delete, insert, select, update
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter

from annotation_reconciler.errors import MetadataError
from annotation_reconciler.portal.models import PortalBase
from annotation_reconciler.rules.paths import BucketLayout

Row = dict[str, Any]
Key = tuple[Any, ...]
Converter = Callable[[Any], Any]
Matches = dict[Key, list[Row]]


class _Keep:
    """A column value that says "keep what the row holds" (an insert writes NULL)."""

    def __repr__(self) -> str:
        return "KEEP"


#: Put in a row for a column whose value could not be learned (an S3 error): an update keeps the stored value.
KEEP: Any = _Keep()


@dataclass(frozen=True)
class ImportProblem:
    """Something that could not be read or mapped; its scope is left without cleanup."""

    scope: str
    message: str
    key: str | None = None

    def __str__(self) -> str:
        where = f" ({self.key})" if self.key and self.key != self.scope else ""
        return f"{self.scope}{where}: {self.message}"


@dataclass(frozen=True)
class FoundItem:
    """One thing a finder found: a metadata document (or a part of one) and where it was found."""

    data: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)  # parent ids, list position, key prefix
    key: str | None = None  # the S3 key (or prefix) it was read from


@dataclass
class FindResult:
    """The items found in a scope; ``complete`` only when every listing and every read succeeded."""

    items: list[FoundItem] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    # Complete listings the finder made (prefix -> every key under it): the evidence of absence.
    listings: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.problems


class Finder(Protocol):
    def find(self) -> FindResult: ...


class ItemsFinder:
    """A finder over items already in memory (children read from their parent's metadata)."""

    def __init__(self, items: Iterable[FoundItem]) -> None:
        self.items = list(items)

    def find(self) -> FindResult:
        return FindResult(items=list(self.items))


def table_of(name: str) -> Table:
    """The mapped (and only the mapped) columns of a portal table."""
    return PortalBase.metadata.tables[name]


def dig(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    """``data[path[0]][path[1]]…``, or None when a step is missing or not an object."""
    value: Any = data
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


@dataclass(frozen=True)
class StoredPaths:
    """How rows store the location of an object: ``s3://{bucket}/{key}`` and ``{https_prefix}{key}``."""

    layout: BucketLayout
    https_prefix: str

    @classmethod
    def of(cls, layout: BucketLayout, https_prefix: str | None = None) -> StoredPaths:
        prefix = https_prefix or public_https_prefix(layout.bucket)
        return cls(layout, prefix.rstrip("/") + "/")

    def s3_path(self, key: str) -> str:
        return self.layout.s3_path(key)

    def https_path(self, key: str) -> str:
        return self.https_prefix + key


def public_https_prefix(bucket: str) -> str:
    """The bucket's public URL, the default HTTPS prefix of stored paths."""
    return f"https://{bucket}.s3.amazonaws.com/"


class ItemImporter:
    """Maps one found item to one row of ``table_name``, declaratively.

    ``direct_mapped_fields`` maps a column to a path in the item's data, ``context_mappings`` a column
    to a value of the item's context (a parent id), ``converters`` checks and converts a column's value (raising
    :class:`MetadataError`); :meth:`extra_fields` adds computed columns.
    """

    table_name: ClassVar[str]
    id_fields: ClassVar[tuple[str, ...]]
    direct_mapped_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    context_mappings: ClassVar[Mapping[str, str]] = {}
    converters: ClassVar[Mapping[str, Converter]] = {}

    def __init__(self, item: FoundItem, paths: StoredPaths) -> None:
        self.item = item
        self.paths = paths

    def validate(self) -> None:
        """Raise :class:`MetadataError` when the item cannot become a row."""

    def extra_fields(self) -> Row:
        return {}

    def to_row(self) -> Row:
        self.validate()
        row: Row = {}
        for column, path in self.direct_mapped_fields.items():
            value = dig(self.item.data, path)
            convert = self.converters.get(column)
            try:
                row[column] = convert(value) if convert and value is not None else value
            except (TypeError, ValueError) as exc:
                raise MetadataError(f"{'.'.join(path)}={value!r}: {exc}") from None
        for column, name in self.context_mappings.items():
            row[column] = self.item.context[name]
        row.update(self.extra_fields())
        return row

    @classmethod
    def key_of(cls, row: Mapping[str, Any]) -> Key:
        return tuple(row[column] for column in cls.id_fields)


@dataclass
class ImportResult:
    """What one integrated importer did in one scope."""

    table: str
    imported: list[tuple[FoundItem, Row]] = field(default_factory=list)  # each row carries its "id"
    inserted: int = 0
    updated: int = 0
    unused: list[Row] = field(default_factory=list)  # existing rows in scope that nothing matched
    problems: list[ImportProblem] = field(default_factory=list)
    removed: Counter[str] = field(default_factory=Counter)  # rows deleted per table by the cleanup
    deleted_ids: list[int] = field(default_factory=list)  # ids of this table's rows the cleanup deleted

    @property
    def cleanup_allowed(self) -> bool:
        return not self.problems

    @property
    def ids(self) -> list[int]:
        return [int(row["id"]) for _, row in self.imported]


def id_array(ids: Iterable[int], name: str = "ids") -> BindParameter[Any]:
    """Ids as one ``integer[]`` parameter, for ``= ANY(…)``: one parameter however many ids."""
    array: ARRAY[Any] = ARRAY(Integer)
    return bindparam(name, list(ids), type_=array)


class IntegratedDBImporter(ABC):
    """Finds items, upserts their rows on the natural key, and cleans up unused siblings in scope.

    Subclasses declare ``finder`` (a callable taking :meth:`get_finder_args`), ``row_importer``
    and ``clean_up_siblings``, and say with :meth:`get_filters` which existing rows are theirs.
    """

    finder: ClassVar[Callable[..., Finder]]
    row_importer: ClassVar[type[ItemImporter]]
    clean_up_siblings: ClassVar[bool] = False
    paths: StoredPaths
    #: Natural keys :meth:`map_items` held back: no row of them is written or is a cleanup candidate.
    held_keys: frozenset[Key] = frozenset()

    @property
    @abstractmethod
    def scope(self) -> str:
        """A name for the scope in reports ("voxel spacing 12 (10001/TS_001/…)")."""

    @abstractmethod
    def get_finder_args(self) -> dict[str, Any]: ...

    @abstractmethod
    def get_filters(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses selecting the existing rows this importer owns (and may clean up)."""

    @property
    def table(self) -> Table:
        return table_of(self.row_importer.table_name)

    def existing_order(self) -> list[ColumnElement[Any]]:
        """Order of existing rows: the first row of a natural key is updated, later duplicates are unused."""
        return [self.table.c.id]

    def find(self) -> FindResult:
        return self.finder(**self.get_finder_args()).find()

    def map_items(self, found: FindResult) -> tuple[dict[Key, tuple[FoundItem, Row]], list[ImportProblem]]:
        """Rows wanted by natural key; an unmappable item or a repeated key is a problem."""
        problems = list(found.problems)
        wanted: dict[Key, tuple[FoundItem, Row]] = {}
        for item in found.items:
            try:
                row = self.row_importer(item, self.paths).to_row()
            except MetadataError as exc:
                problems.append(ImportProblem(self.scope, f"not imported: {exc}", item.key))
                continue
            key = self.row_importer.key_of(row)
            if key in wanted:
                problems.append(ImportProblem(self.scope, f"natural key {key} found twice; kept the first", item.key))
                continue
            wanted[key] = (item, row)
        return wanted, problems

    def load_existing(self, conn: Connection) -> list[Row]:
        query = select(self.table).where(*self.get_filters()).order_by(*self.existing_order())
        return [dict(r) for r in conn.execute(query).mappings()]

    def load_matches(
        self, conn: Connection, wanted: Mapping[Key, tuple[FoundItem, Row]], in_scope: list[Row]
    ) -> Matches:
        """The existing rows each wanted natural key may update, best first (default: the scope's own rows)."""
        matches: Matches = {}
        for loaded in in_scope:
            matches.setdefault(self.row_importer.key_of(loaded), []).append(loaded)
        return matches

    def pick(
        self, conn: Connection, key: Key, item: FoundItem, row: Row, candidates: list[Row]
    ) -> Row | ImportProblem | None:
        """The row to update for ``key`` (None: insert one), or a problem that holds the key back: nothing of it
        is written and no row with that key is a cleanup candidate."""
        return candidates[0] if candidates else None

    def import_items(self, conn: Connection, found: FindResult) -> ImportResult:
        """Upsert the found rows: one SELECT, at most one INSERT … RETURNING and one UPDATE executemany."""
        table = self.table
        outcome = ImportResult(table.name)
        wanted, outcome.problems = self.map_items(found)
        in_scope = self.load_existing(conn)
        matches = self.load_matches(conn, wanted, in_scope)
        taken: set[int] = set()
        held: set[Key] = set(self.held_keys)
        inserts: list[Row] = []
        updates: list[Row] = []
        for key, (item, row) in wanted.items():
            old = self.pick(conn, key, item, row, [r for r in matches.get(key, []) if int(r["id"]) not in taken])
            if isinstance(old, ImportProblem):
                outcome.problems.append(old)
                held.add(key)
                continue
            if old is None:
                inserts.append({c: None if v is KEEP else v for c, v in row.items()})
                outcome.imported.append((item, inserts[-1]))
                continue
            row = {c: old.get(c) if v is KEEP else v for c, v in row.items()}
            if any(old.get(column) != value for column, value in row.items()):
                updates.append(row)
            row["id"] = old["id"]
            taken.add(int(old["id"]))
            outcome.imported.append((item, row))
        outcome.unused = [r for r in in_scope if int(r["id"]) not in taken and self.row_importer.key_of(r) not in held]
        outcome.unused.sort(key=lambda r: int(r["id"]))
        if inserts:
            inserting = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            new_ids = conn.execute(inserting, inserts).scalars().all()
            for row, new_id in zip(inserts, new_ids, strict=True):
                row["id"] = new_id
        if updates:
            columns = [c for c in updates[0] if c != "id"]
            updating = update(table).where(table.c.id == bindparam("_id"))
            updating = updating.values({c: bindparam(f"_{c}") for c in columns})
            conn.execute(updating, [{"_id": r["id"], **{f"_{c}": r[c] for c in columns}} for r in updates])
        outcome.inserted, outcome.updated = len(inserts), len(updates)
        return outcome

    def cleanup_unused_items(self, conn: Connection, outcome: ImportResult) -> None:
        """Delete the unused rows in scope, set-based, into ``outcome``; nothing unless the scope was read
        completely."""
        if not self.clean_up_siblings or not outcome.cleanup_allowed or not outcome.unused:
            return
        removed = self.delete_rows(conn, [int(r["id"]) for r in outcome.unused])
        outcome.deleted_ids += removed
        outcome.removed[self.table.name] += len(removed)

    def delete_rows(self, conn: Connection, ids: list[int]) -> list[int]:
        """Delete rows by id in one statement; returns the ids deleted."""
        table = self.table
        return list(
            conn.execute(delete(table).where(table.c.id == any_(id_array(ids))).returning(table.c.id)).scalars()
        )
