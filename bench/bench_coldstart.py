"""Benchmark 8: Lambda cold start, importing ``annotation_reconciler.handlers`` and building the runtime, each time
in a fresh interpreter.

A child ``python`` process, with the environment the CDK stack gives the Lambdas (Powertools service,
namespace and log level; tracing active, as ``Tracing.ACTIVE`` sets), times:

- ``import annotation_reconciler.handlers`` (Powertools, boto3, SQLAlchemy, the reconciler);
- ``runtime.build_runtime()``: validated settings, the engine, the S3 and SQS clients;
- the first database connection (``SELECT 1``; Lambda pays it on the first invocation, not at init).

The parent also times the whole process, interpreter start included. Nothing calls AWS (dummy
credentials; building clients sends no request)::

    .venv/bin/python -m bench.bench_coldstart
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from annotation_reconciler.names import NAMESPACE, SERVICE, Env, Powertools
from bench.measure import ROOT
from bench.portal import run_alone
from bench.report import BenchContext, Section, fmt_s

RUNS = 5
TARGET_S = 1.0

CHILD = """
import json, resource, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
c0, t0 = cpu(), time.perf_counter()
import annotation_reconciler.handlers
t1 = time.perf_counter()
from annotation_reconciler.service.runtime import build_runtime
from sqlalchemy import text
runtime = build_runtime()
c2, t2 = cpu(), time.perf_counter()
with runtime.engine.connect() as conn:
    conn.execute(text("SELECT 1"))
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "connect": t3 - t2, "init_cpu": c2 - c0}))
"""


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_", "POWERTOOLS_"))}
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            Env.DB_URL: db_url,
            Env.BUCKET: "cryoet-data-portal-public",
            Env.WORK_QUEUE_URL: "https://sqs.us-west-2.amazonaws.com/123456789012/annotation-reconciler-work",
            Powertools.SERVICE_NAME: SERVICE,
            Powertools.METRICS_NAMESPACE: NAMESPACE,
            Powertools.LOG_LEVEL: "INFO",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def measure(db_url: str, runs: int = RUNS) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD], cwd=ROOT, env=_env(db_url), capture_output=True, text=True, check=False
        )
        total = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"cold start child failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures["process"] = total
        figures["init"] = figures["import"] + figures["build"]
        out.append(figures)
    return out


def run(ctx: BenchContext) -> list[Section]:
    url = ctx.factory.fresh("coldstart")
    measure(url, 1)  # warm the OS page cache and the bytecode already on disk, as a deployed image has them
    runs = measure(url)
    ctx.factory.drop("coldstart")
    out = Section(
        "coldstart",
        f"8. Lambda cold start: a fresh interpreter imports the handlers and builds the runtime ({RUNS} runs)",
        ["step", "median", "max"],
    )
    for key, label in (
        ("import", "import annotation_reconciler.handlers"),
        ("build", "build_runtime() (settings, engine, S3 and SQS clients)"),
        ("init", "init = import + build (the target)"),
        ("init_cpu", "… its CPU time (user + system)"),
        ("connect", "first database connection (first invocation)"),
        ("process", "whole process, interpreter start to exit"),
    ):
        values = [r[key] for r in runs]
        out.add(label, fmt_s(statistics.median(values)), fmt_s(max(values)))
    out.notes.append(
        "The stack's Lambda environment (Powertools service, namespace, log level; X-Ray tracing active), dummy "
        "credentials, a local PostgreSQL. Timed inside the child with time.perf_counter; 'whole process' is timed by "
        "the parent. The machine is shared: on a busy machine the wall time is mostly waiting for a core, so the "
        f"CPU time is given too (load average when this table was made: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores). Where the import's time goes (python -X importtime): boto3/botocore, "
        "SQLAlchemy's ORM (the ledger's declarative models) and aws_xray_sdk (Powertools' Tracer)."
    )
    init = [r["init"] for r in runs]
    ctx.facts["coldstart"] = {
        "median": statistics.median(init),
        "max": max(init),
        "cpu": statistics.median(r["init_cpu"] for r in runs),
        "load": os.getloadavg()[0],
    }
    return [ctx.emit(out)]


def main() -> None:
    run_alone(run, __doc__)


if __name__ == "__main__":
    main()
