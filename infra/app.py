"""``cdk synth`` entry point (see cdk.json): synthesizes offline, no lookups, no Docker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import StackConfig
from infra.stack import ReconcilerStack


def build_app(context: dict[str, object] | None = None, *, outdir: str | None = None, nag: bool = True) -> cdk.App:
    app = cdk.App(context=context or {}, outdir=outdir)
    config = StackConfig.from_context(app)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    ReconcilerStack(app, str(app.node.try_get_context("stack_name") or "AnnotationReconciler"), config=config, env=env)
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


if __name__ == "__main__":
    build_app().synth()
