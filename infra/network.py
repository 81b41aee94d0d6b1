"""The portal database's VPC as the Lambdas see it: their own security group, its way to PostgreSQL, and the
endpoints that let them reach S3, SQS and Secrets Manager without a NAT.

Every resource is created directly in the stack's scope (``stack`` is the ``cdk.Stack``, never a new
``Construct`` child): a construct in between would change every logical ID, and CloudFormation would replace
the security groups and endpoints of a running deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2

from infra.config import StackConfig

Endpoint = ec2.GatewayVpcEndpoint | ec2.InterfaceVpcEndpoint


@dataclass(frozen=True)
class Network:
    """What the functions are placed in; empty outside a VPC (a sandbox)."""

    #: Keyword arguments for ``lambda_.Function`` (vpc, security_groups, vpc_subnets); empty outside a VPC.
    function_props: dict[str, Any] = field(default_factory=dict)
    lambda_security_group: ec2.SecurityGroup | None = None
    #: The endpoints this stack creates, by service; each function waits for them (no cold start before).
    endpoints: dict[str, Endpoint] = field(default_factory=dict)


def add_network(stack: cdk.Stack, config: StackConfig) -> Network:
    """Create the Lambdas' security group (and the database's ingress rule) and the missing endpoints."""
    c = config
    if not c.vpc_id:
        return Network()
    vpc = ec2.Vpc.from_vpc_attributes(
        stack,
        "PortalVpc",
        vpc_id=c.vpc_id,
        availability_zones=list(c.availability_zones),
        private_subnet_ids=list(c.subnet_ids),
        private_subnet_route_table_ids=list(c.route_table_ids) or None,
    )
    subnets = ec2.SubnetSelection(subnets=vpc.private_subnets)
    group = ec2.SecurityGroup(
        stack,
        "LambdaSecurityGroup",
        vpc=vpc,
        description="annotation-reconciler Lambdas: HTTPS to AWS APIs and PostgreSQL to the portal database",
        allow_all_outbound=False,
    )
    group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (VPC endpoints or a NAT)")
    port = ec2.Port.tcp(c.db_port)
    if c.db_security_group_id:
        db_group = ec2.SecurityGroup.from_security_group_id(
            stack, "PortalDbSecurityGroup", c.db_security_group_id, allow_all_outbound=False
        )
        group.add_egress_rule(db_group, port, "PostgreSQL to the portal database")
        db_group.add_ingress_rule(group, port, "annotation-reconciler Lambdas")
    else:
        group.add_egress_rule(ec2.Peer.any_ipv4(), port, "PostgreSQL to the portal database")
    groups: list[ec2.ISecurityGroup] = [group]
    if c.security_group_id:
        groups.append(ec2.SecurityGroup.from_security_group_id(stack, "PortalDbAccess", c.security_group_id))
    endpoints = _endpoints(stack, config, vpc, subnets)
    return Network(
        function_props={"vpc": vpc, "security_groups": groups, "vpc_subnets": subnets},
        lambda_security_group=group,
        endpoints=endpoints,
    )


def _endpoints(
    stack: cdk.Stack, config: StackConfig, vpc: ec2.IVpc, subnets: ec2.SubnetSelection
) -> dict[str, Endpoint]:
    """The endpoints of ``config.endpoints_to_create``: S3's gateway, then the SQS and Secrets Manager interfaces."""
    endpoints: dict[str, Endpoint] = {}
    wanted = config.endpoints_to_create
    if "s3" in wanted:
        endpoints["s3"] = ec2.GatewayVpcEndpoint(
            stack, "S3Endpoint", vpc=vpc, service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[subnets]
        )
    interface = [
        (name, service)
        for name, service in (
            ("sqs", ec2.InterfaceVpcEndpointAwsService.SQS),
            ("secretsmanager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
        )
        if name in wanted
    ]
    if not interface:
        return endpoints
    endpoint_group = ec2.SecurityGroup(
        stack,
        "EndpointSecurityGroup",
        vpc=vpc,
        description="annotation-reconciler interface endpoints: HTTPS from the whole VPC (their private DNS "
        "answers for every workload in it)",
        allow_all_outbound=False,
    )
    # Private DNS makes these endpoints the answer to sqs./secretsmanager.REGION.amazonaws.com for the
    # whole VPC: admitting only the Lambdas would cut every other workload in it off those services.
    assert config.vpc_cidr is not None  # StackConfig.validate requires it when interface endpoints are made
    endpoint_group.add_ingress_rule(
        ec2.Peer.ipv4(config.vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC (private DNS serves all of it)"
    )
    for name, service in interface:
        endpoints[name] = ec2.InterfaceVpcEndpoint(
            stack,
            f"{'SecretsManager' if name == 'secretsmanager' else name.upper()}Endpoint",
            vpc=vpc,
            service=service,
            subnets=ec2.SubnetSelection(subnets=vpc.private_subnets, one_per_az=True),
            private_dns_enabled=True,
            open=False,
            security_groups=[endpoint_group],
        )
    return endpoints
