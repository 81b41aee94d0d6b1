"""The ledger's status constants: the SQL list the queries use says the same as the Python tuple."""

from annotation_reconciler.ledger.models import OPEN_STATUS_LIST, OPEN_STATUSES, Status


def test_open_statuses_are_quarantined_and_held() -> None:
    assert OPEN_STATUSES == (Status.QUARANTINED, Status.HELD)


def test_the_sql_list_of_open_statuses_names_exactly_the_open_statuses() -> None:
    built = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"
    assert built == OPEN_STATUS_LIST


def test_a_cold_start_imports_no_orm_model() -> None:
    """Issue 30 (cold start < 1 s): the handlers' import chain reads the status vocabulary from ``ledger`` and builds
    no ORM model (the ORM, ~0.3 s of CPU, is for the CLI, the importer and restore), and makes its AWS clients with
    botocore alone (boto3 is not imported)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, annotation_reconciler.handlers; print(sorted(m for m in sys.modules if m in CHECKED))"
    checked = ("sqlalchemy.orm", "annotation_reconciler.ledger.models", "annotation_reconciler.portal.models", "boto3")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-west-2", "PYTHONPATH": str(Path(__file__).parents[2] / "lambdas")}
    out = subprocess.run(
        [sys.executable, "-c", f"CHECKED = {checked!r}; {code}"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
