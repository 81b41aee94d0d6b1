"""The work queue's messages, one type per message, each with ``to_body`` and ``parse``: the schedule fans the
full reconciliation out as :class:`ShardMessage` (a LIST shard, its continuation, a retry of some of its
prefixes), and the work Lambda reads them back. Pure: no AWS, no database."""

from annotation_reconciler.fanout.messages import SHARD_TYPE, ShardMessage

__all__ = ["SHARD_TYPE", "ShardMessage"]
