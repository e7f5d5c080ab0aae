"""Publishers of `BacktestFinished` events onto the Redis stream."""

from edgeloop.producers.publisher import Publisher, partition_for

__all__ = ["Publisher", "partition_for"]
