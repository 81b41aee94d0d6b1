"""``cdk synth`` entry point (see cdk.json): synthesizes offline, no lookups, no Docker.

``-c env=NAME`` loads ``infra/env/NAME.json`` (the deployment's settings, committed; copied from one of
``infra/env/examples/``, whose placeholder ids are refused); see ``infra/environment.py`` for how it combines with
``-c key=value``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import StackConfig
from infra.environment import apply_environment, deployment_target, refuse_placeholders
from infra.stack import ReconcilerStack


def build_app(context: dict[str, object] | None = None, *, outdir: str | None = None, nag: bool = True) -> cdk.App:
    app = cdk.App(context=context or {}, outdir=outdir)
    apply_environment(app)
    refuse_placeholders(app)
    config = StackConfig.from_context(app)
    env = deployment_target(app, os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION"))
    ReconcilerStack(app, str(app.node.try_get_context("stack_name") or "AnnotationReconciler"), config=config, env=env)
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


if __name__ == "__main__":
    try:
        build_app().synth()
    except ValueError as exc:  # a context problem: say what to fix, without a jsii traceback
        print(f"annotation-reconciler: {exc}", file=sys.stderr)
        sys.exit(2)
