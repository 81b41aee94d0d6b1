"""The functions' IAM statements: exactly the calls each function's code (and Lambda on its behalf) makes, on
its own resources. Plain functions returning ``iam.PolicyStatement``: they create no resource themselves.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs

from infra.config import StackConfig

#: What Lambda's SQS event source calls with the function's role (AWSLambdaSQSQueueExecutionRole's actions).
SQS_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
#: What Lambda calls with the function's role to attach it to the VPC (AWSLambdaENIManagementAccess's actions);
#: EC2 takes no narrower resource for the Describe calls, and Lambda checks them all on "*".
VPC_ENI = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


def execution_statements(
    config: StackConfig, log_group: logs.LogGroup, secret_name: str, kms_via: tuple[str, ...]
) -> list[iam.PolicyStatement]:
    """What every function needs: its own log group (no logs:* on *), its secret's value (no DescribeSecret),
    the VPC's network interfaces, and kms:Decrypt on exactly the keys named, through the services named."""
    statements = [
        iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ),
        iam.PolicyStatement(
            sid="ReadDatabaseSecret",
            actions=["secretsmanager:GetSecretValue"],
            resources=[secret_resource(secret_name)],
        ),
    ]
    if config.vpc_id:
        statements.append(iam.PolicyStatement(sid="AttachToVpc", actions=VPC_ENI, resources=["*"]))
    if config.kms_key_arns:
        statements.append(
            iam.PolicyStatement(
                sid="DecryptWithCustomerKeys",
                actions=["kms:Decrypt"],
                resources=list(config.kms_key_arns),
                conditions={
                    "StringEquals": {
                        "kms:ViaService": [f"{service}.{cdk.Aws.REGION}.amazonaws.com" for service in kms_via]
                    }
                },
            )
        )
    return statements


def secret_resource(name: str) -> str:
    """The secret's ARN; for a secret named without its ARN, the ``-??????`` pattern of its random suffix."""
    if name.startswith("arn:"):
        return name
    return f"arn:{cdk.Aws.PARTITION}:secretsmanager:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:secret:{name}-??????"


def consume(queue: sqs.IQueue) -> iam.PolicyStatement:
    """What the SQS event source calls on the function's own queue."""
    return iam.PolicyStatement(sid="ConsumeOwnQueue", actions=SQS_CONSUME, resources=[queue.queue_arn])


def send_work(queue: sqs.IQueue) -> iam.PolicyStatement:
    """Queue shards on the work queue (the work and schedule functions)."""
    return iam.PolicyStatement(sid="SendWorkShards", actions=["sqs:SendMessage"], resources=[queue.queue_arn])


def list_statements(bucket: str, prefix: str, sid: str) -> list[iam.PolicyStatement]:
    """ListBucket on ``bucket``, only under ``prefix`` when one is given. The portal bucket gets nothing else:
    the code only lists it (a LIST proves a key absent; no object is ever read)."""
    statement = iam.PolicyStatement(
        sid=sid, actions=["s3:ListBucket"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"]
    )
    if prefix:
        statement.add_condition("StringLike", {"s3:prefix": [f"{prefix}*"]})
    return [statement]


def inventory_location(manifest: str) -> tuple[str, str]:
    """``s3://bucket/key/`` → (bucket, key): where S3 Inventory writes its manifests and data files."""
    bucket, _, key = manifest[len("s3://") :].partition("/")
    return bucket, key


def inventory_statements(manifest: str | None) -> list[iam.PolicyStatement]:
    """List and read under the inventory's prefix (the schedule function, with ``inventory_manifest``)."""
    if not manifest:
        return []
    bucket, key = inventory_location(manifest)
    return [
        *list_statements(bucket, key, "ListInventory"),
        iam.PolicyStatement(
            sid="ReadInventory", actions=["s3:GetObject"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}*"]
        ),
    ]
