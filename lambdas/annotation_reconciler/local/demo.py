"""``make demo``: the reconciler on embedded defaults (a throwaway PostgreSQL and a local moto S3)."""

from __future__ import annotations

import sys

import boto3
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.moto_server import LocalMotoServer
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.synthetic import PortalSpec, build_portal, write_bucket, write_rows

TABLES = ("dataset", "run", "tomogram_voxel_spacing", "annotation", "annotation_shape", "annotation_file",
          "annotation_author", "annotation_method_link", "annotation_quarantine")  # fmt: skip


def main() -> int:
    console = Console()
    with LocalPostgres() as pg, LocalMotoServer() as moto:
        console.rule("[bold]annotation-reconciler demo")
        console.print(f"PostgreSQL on {pg.url}  |  moto S3 on {moto.endpoint_url}")
        url = DatabaseFactory(pg.url).fresh("portal")
        engine = make_engine(url)
        s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-west-2")
        portal = build_portal(PortalSpec(datasets=3, runs_per_dataset=8, annotations_per_voxel_spacing=10))
        objects = write_bucket(s3, portal)
        write_rows(engine, portal)
        table = Table(title=f"Synthetic portal: {objects} objects in s3://{portal.spec.bucket}")
        table.add_column("table")
        table.add_column("rows", justify="right")
        with engine.connect() as conn:
            for name in TABLES:
                table.add_row(name, str(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar()))  # noqa: S608
        console.print(table)
        engine.dispose()
    console.print("[green]done: PostgreSQL and moto stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
