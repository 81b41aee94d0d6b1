"""The ledger's status constants: the SQL list the queries use says the same as the Python tuple."""

from annotation_reconciler.ledger.models import OPEN_STATUS_LIST, OPEN_STATUSES, Status


def test_open_statuses_are_quarantined_and_held() -> None:
    assert OPEN_STATUSES == (Status.QUARANTINED, Status.HELD)


def test_the_sql_list_of_open_statuses_names_exactly_the_open_statuses() -> None:
    built = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"
    assert built == OPEN_STATUS_LIST
