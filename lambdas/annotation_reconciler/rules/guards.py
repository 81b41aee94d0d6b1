"""The guards' pure parts: how many deletions a dataset may take without an operator, and where the
evidence for an ``Annotations/`` prefix that lists no metadata is looked for. ``lifecycle.decide`` applies
them; ``evidence.dataset_neighbours`` asks S3 about the folders :func:`empty_prefixes` names.
"""

from __future__ import annotations

from collections.abc import Mapping

from annotation_reconciler.rules.paths import is_metadata_key
from annotation_reconciler.rules.spelling import spelling_form

#: The mass-deletion guard's absolute floor: a dataset may always lose this many annotations at once,
#: whatever the fraction (unless they are all it has). The portal's voxel spacings mostly hold one or
#: two annotations, so retracting one voxel spacing's annotations is the ordinary deletion.
GUARD_FLOOR = 2


def guard_allows(opened: int, total: int, max_fraction: float, floor: int = GUARD_FLOOR) -> bool:
    """May a dataset of ``total`` annotations have ``opened`` open deletions without an operator?

    Up to ``floor`` or up to ``max_fraction`` of it, whichever is more, but never all of it unless
    ``max_fraction`` is 1 (a dataset vanishing is held; so is one whose size is unknown).

    >>> guard_allows(1, 5, 0.1), guard_allows(2, 5, 0.1), guard_allows(3, 5, 0.1), guard_allows(2, 2, 0.1)
    (True, True, False, False)
    >>> guard_allows(10, 100, 0.1), guard_allows(11, 100, 0.1), guard_allows(1, 0, 0.1)
    (True, False, False)
    """
    if total <= 0 or (opened >= total and max_fraction < 1):
        return False
    return opened <= max(floor, max_fraction * total)


def dataset_folder(annotations_prefix: str) -> str:
    """The dataset folder of an ``Annotations/`` prefix (its voxel spacing folder if the layout is not the portal's).

    >>> dataset_folder("root/10001/TS/Reconstructions/VoxelSpacing1.000/Annotations/")
    'root/10001/'
    >>> dataset_folder("root/10001/TS/reconstructions/voxelspacing1.000/Annotations/")
    'root/10001/'
    """
    parts = annotations_prefix.rstrip("/").split("/")
    if (
        len(parts) >= 5
        and spelling_form(parts[-3]) == "reconstructions"
        and spelling_form(parts[-2]).startswith("voxelspacing")
    ):  # the portal's layout, in any spelling (a folder spelled apart still lies in its dataset folder)
        return "/".join(parts[:-4]) + "/"
    return "/".join(parts[:-1]) + "/"


def folder_levels(annotations_prefix: str) -> list[tuple[str, str]]:
    """Each folder from the dataset folder down to an ``Annotations/`` prefix, as (its parent, its own name with the
    slash): the folders a LIST with a delimiter of each parent must show without a spelling twin beside them. The
    dataset folder's parent is the bucket's root (or the folder above it).

    >>> folder_levels("root/10001/TS/Reconstructions/VoxelSpacing1.000/Annotations/")[:2]
    [('root/', '10001/'), ('root/10001/', 'TS/')]
    >>> [name for _, name in folder_levels("1/TS/Reconstructions/VoxelSpacing1.000/Annotations/")]
    ['1/', 'TS/', 'Reconstructions/', 'VoxelSpacing1.000/', 'Annotations/']
    """
    parent = dataset_folder(annotations_prefix).rstrip("/").rpartition("/")[0]
    parent = parent + "/" if parent else ""
    levels = []
    for name in annotations_prefix[len(parent) :].split("/")[:-1]:
        levels.append((parent, name + "/"))
        parent += name + "/"
    return levels


def empty_prefixes(listings: Mapping[str, frozenset[str] | BaseException]) -> list[str]:
    """The completely listed ``Annotations/`` prefixes that hold no annotation metadata, sorted: the
    ones whose dataset folder :func:`decide` needs to know about (``Evidence.neighbours``)."""
    return sorted(
        prefix
        for prefix, listing in listings.items()
        if isinstance(listing, frozenset) and not any(is_metadata_key(k) for k in listing)
    )
