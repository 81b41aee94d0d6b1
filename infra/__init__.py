"""The CDK app that deploys annotation-reconciler (``cdk.json`` at the repository's top level)."""
