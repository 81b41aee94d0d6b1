"""Bundle the Lambda code and its dependencies locally, without Docker.

pip installs the pinned requirements for the Lambda platform (manylinux2014_x86_64,
CPython 3.12, wheels only) into a cache keyed by the requirements' hash; each synth copies the
cache and the ``annotation_reconciler`` package into the asset directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "infra" / "lambda-requirements.txt"
PACKAGE = ROOT / "lambdas" / "annotation_reconciler"
CACHE = ROOT / "build" / "lambda-deps"
PLATFORM = (
    "--platform",
    "manylinux2014_x86_64",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "--only-binary=:all:",
)


class BundlingError(RuntimeError):
    """pip could not assemble the Lambda dependencies (Docker is never the fallback)."""


def dependencies_dir() -> Path:
    """The cached dependency tree for the current requirements, built once."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + " ".join(PLATFORM).encode()).hexdigest()[:16]
    target = CACHE / digest
    if (target / ".complete").exists():
        return target
    staging = CACHE / f"{digest}.partial-{os.getpid()}"  # one per process: concurrent synths never share one
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        *PLATFORM,
        "--target",
        str(staging),
        "-r",
        str(REQUIREMENTS),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundlingError(f"pip could not bundle the Lambda dependencies: {done.stderr.strip()[-2000:]}")
    (staging / ".complete").touch()
    try:
        staging.rename(target)  # atomic; fails if another process got there first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / ".complete").exists():
            raise
    return target


def _ignore(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc") or n == "local"]


@jsii.implements(cdk.ILocalBundling)
class LocalBundling:
    """``try_bundle`` copies the dependencies and the package into the asset's output directory."""

    def try_bundle(self, output_dir: str, *, image: Any = None, **_options: Any) -> bool:
        out = Path(output_dir)
        shutil.copytree(dependencies_dir(), out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
        shutil.copytree(PACKAGE, out / "annotation_reconciler", dirs_exist_ok=True, ignore=_ignore)
        return True


def lambda_code() -> cdk.aws_lambda.Code:
    """The Lambda asset: bundled locally at synth time; never built with Docker."""
    return cdk.aws_lambda.Code.from_asset(
        str(PACKAGE.parent),
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=LocalBundling(),
            command=["false"],  # only reached if local bundling returned False, which it never does
        ),
        asset_hash_type=cdk.AssetHashType.SOURCE,
        exclude=["**/__pycache__", "**/*.pyc"],
    )
