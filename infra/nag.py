"""cdk-nag suppressions (the AwsSolutions pack runs at every synth, see ``infra/app.py``).

Each finding is suppressed on the resource it concerns, for the exact wildcard (``applies_to``) and with a
reason that names the resource: a new wildcard anywhere fails the synth. Suppressions are metadata on the
resources the other parts created in the stack's own scope; this module creates no resource.
"""

from __future__ import annotations

from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions

from infra.config import StackConfig
from infra.functions import Lambdas, Secrets
from infra.messaging import Messaging
from infra.monitoring import Monitoring
from infra.policies import VPC_ENI, inventory_location

PARTITION = "<AWS::Partition>"

#: Whose dead-letter queue each one is.
DEAD_LETTER_OF = {
    "EventsDlq": "the events queue's",
    "WorkDlq": "the work queue's",
    "ObjectRuleDlq": "the ObjectChanges rule's",
    "ScheduleDlq": "the schedule rules'",
}


def suppress_findings(
    config: StackConfig, *, secrets: Secrets, messaging: Messaging, lambdas: Lambdas, monitoring: Monitoring
) -> None:
    _suppress_role_wildcards(config, secrets, lambdas)
    for name, queue in messaging.dead_letter_queues.items():
        NagSuppressions.add_resource_suppressions(
            queue,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason=f"{name} is {DEAD_LETTER_OF[name]} dead-letter queue: a dead-letter queue has none itself.",
                )
            ],
        )
    NagSuppressions.add_resource_suppressions(
        monitoring.alarm_topic,
        [
            NagPackSuppression(
                id="AwsSolutions-SNS2",
                reason="AlarmTopic: alarm notifications carry no data; SSE would need a customer managed key "
                "whose policy admits CloudWatch, which alarm state changes do not warrant.",
            )
        ],
    )
    if isinstance(messaging.bucket, s3.Bucket):
        NagSuppressions.add_resource_suppressions(
            messaging.bucket,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason=f"Bucket {config.bucket_name}: owned_bucket is for sandboxes and tests; the "
                    "portal's bucket is imported, never created, and keeps its own logging.",
                )
            ],
        )


def _suppress_role_wildcards(config: StackConfig, secrets: Secrets, lambdas: Lambdas) -> None:
    """Each role's wildcards (X-Ray, the VPC's network interfaces, a secret named without its ARN, the inventory's
    prefix), one suppression each; and each function's pinned runtime."""
    for name, fn in (
        ("EventsFunction", lambdas.events_fn),
        ("WorkFunction", lambdas.work_fn),
        ("ScheduleFunction", lambdas.schedule_fn),
    ):
        secret = (secrets.events if fn is lambdas.events_fn else secrets.portal).configured
        star = "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) take no resource"
        if config.vpc_id:
            eni = ", ".join(VPC_ENI)
            star += f", nor do the network-interface actions Lambda calls to attach it to the VPC ({eni})"
        wildcards = [("Resource::*", f"{name}'s role: {star}; tests/infra compare every statement with a table.")]
        if not secret.startswith("arn:"):
            wildcards.append(
                (
                    f"Resource::arn:{PARTITION}:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{secret}-??????",
                    f"{name}'s role: the secret {secret} is named without its ARN, so GetSecretValue matches its "
                    "random six-character suffix (-??????); give the full ARN in db_secret to drop this.",
                )
            )
        if fn is lambdas.schedule_fn and config.inventory_manifest:
            bucket, key = inventory_location(config.inventory_manifest)
            wildcards.append(
                (
                    f"Resource::arn:{PARTITION}:s3:::{bucket}/{key}*",
                    f"{name}'s role: s3:GetObject under s3://{bucket}/{key}, where S3 Inventory writes its "
                    "dated manifests and data files (inventory_manifest); nothing else is read.",
                )
            )
        role = fn.role
        assert role is not None
        NagSuppressions.add_resource_suppressions(
            role,
            [NagPackSuppression(id="AwsSolutions-IAM5", reason=why, applies_to=[w]) for w, why in wildcards],
            apply_to_children=True,  # the X-Ray statements are in the role's default policy
        )
        NagSuppressions.add_resource_suppressions(
            fn,
            [
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason=f"{name}: pinned to python3.12, the runtime the package and its bundled wheels are "
                    "built and tested for; upgraded deliberately, not by default.",
                )
            ],
        )
