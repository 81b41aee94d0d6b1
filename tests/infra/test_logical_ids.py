"""The logical IDs of a deployed stack's resources do not change: CloudFormation replaces a resource whose
logical ID changes, so a refactor that moved a queue, a function or a log group into a ``Construct`` of its own
(which prefixes and rehashes its ID) would drop the queued messages and orphan the logs of a running deployment.

The parts of ``infra/`` (messaging, network, functions, monitoring, dashboard, nag) create everything in the
stack's own scope; this table is what the default configuration deploys. Change it only with a migration plan.
"""

from __future__ import annotations

from typing import Any

#: Each resource's logical ID, by type, in the default configuration (tests/infra/conftest.py's CONTEXT).
LOGICAL_IDS = {
    "AWS::CloudWatch::Alarm": [
        "BlindPrefixesA204ACC6",
        "EventsDlqArrivals3994590C",
        "EventsDurationNearTimeoutCDFACD0D",
        "EventsErrors8087735D",
        "EventsQueueAge04236660",
        "EventsThrottles5B0A19B0",
        "HeldWaiting5EABAE64",
        "InventoryStale583D1782",
        "InventoryUnreadableE2658341",
        "MassDeletionGuard13841636",
        "ObjectChangesFailedInvocations1CE2C79B",
        "ObjectRuleDlqArrivalsEB000389",
        "PrefixesBlind71047A5B",
        "PurgeRowsFailedC373FDBD",
        "PurgeScheduleFailedInvocations394FCF72",
        "QuarantineOverdueE8F1E876",
        "ReconcileScheduleFailedInvocations1CBCCEA9",
        "ScheduleDlqArrivals04706605",
        "ScheduleDurationNearTimeout656D1242",
        "ScheduleErrors319D6C4F",
        "ScheduleThrottles8E98F4C6",
        "WorkDlqArrivalsE9C10082",
        "WorkDurationNearTimeout5A7D6142",
        "WorkErrors604442AF",
        "WorkQueueAgeEDA54BFD",
        "WorkThrottles69469B8D",
    ],
    "AWS::CloudWatch::Dashboard": ["Dashboard9E4231ED"],
    "AWS::EC2::SecurityGroup": ["EndpointSecurityGroupF840B798", "LambdaSecurityGroup0BD9FC99"],
    "AWS::EC2::SecurityGroupEgress": [
        "LambdaSecurityGrouptoAnnotationReconcilerPortalDbSecurityGroupFD4C5ACD54328A842BE6",
    ],
    "AWS::EC2::SecurityGroupIngress": [
        "PortalDbSecurityGroupfromAnnotationReconcilerLambdaSecurityGroup471A618A5432837DC965",
    ],
    "AWS::EC2::VPCEndpoint": ["S3EndpointD570F362", "SQSEndpoint4147BFED", "SecretsManagerEndpoint5E83C66B"],
    "AWS::Events::Rule": ["ObjectChanges1DEBD205", "PurgeSchedule65A6F45A", "ReconcileSchedule3E7728F7"],
    "AWS::IAM::Policy": [
        "EventsFunctionRoleDefaultPolicyB10BEE67",
        "ScheduleFunctionRoleDefaultPolicyFDCAABC4",
        "WorkFunctionRoleDefaultPolicy3A6175AA",
    ],
    "AWS::IAM::Role": ["EventsFunctionRoleD38C8199", "ScheduleFunctionRole25F55115", "WorkFunctionRoleEF294672"],
    "AWS::Lambda::EventSourceMapping": ["EventsFunctionSqsSourceCC191720", "WorkFunctionSqsSourceB8CE3531"],
    "AWS::Lambda::Function": ["EventsFunctionDE45FBEF", "ScheduleFunction9870FF0E", "WorkFunctionF5477531"],
    "AWS::Lambda::Permission": [
        "PurgeScheduleAllowEventRuleAnnotationReconcilerScheduleFunction4F517E2CDC6F97A5",
        "ReconcileScheduleAllowEventRuleAnnotationReconcilerScheduleFunction4F517E2C38DF98F6",
    ],
    "AWS::Logs::LogGroup": ["EventsFunctionLogsCE0815EC", "ScheduleFunctionLogsF79AC7EE", "WorkFunctionLogsC0528764"],
    "AWS::SNS::Subscription": ["AlarmTopicopsexampleorg8337F923"],
    "AWS::SNS::Topic": ["AlarmTopicD01E77F9"],
    "AWS::SNS::TopicPolicy": ["AlarmTopicPolicy309DB5F8"],
    "AWS::SQS::Queue": [
        "EventsDlqACDA5DFF",
        "EventsQueueB96EB0D2",
        "ObjectRuleDlq30F782E1",
        "ScheduleDlqBC80447A",
        "WorkDlqEFF57BC6",
        "WorkQueue94013F35",
    ],
    "AWS::SQS::QueuePolicy": [
        "EventsDlqPolicy08A3B1A0",
        "EventsQueuePolicyF3E925EC",
        "ObjectRuleDlqPolicy77A66670",
        "ScheduleDlqPolicy7114C78D",
        "WorkDlqPolicy0754DBF4",
        "WorkQueuePolicy1B56CCA8",
    ],
}


def test_the_logical_ids_of_every_resource_are_those_already_deployed(template: Any) -> None:
    deployed: dict[str, list[str]] = {}
    for logical_id, resource in template.to_json()["Resources"].items():
        deployed.setdefault(resource["Type"], []).append(logical_id)
    assert {kind: sorted(ids) for kind, ids in deployed.items()} == LOGICAL_IDS
