"""Delivers DynamoDB stream records to Lambda as the AWS event source mapping does.

Honoured from the mapping: FilterCriteria, BatchSize, ReportBatchItemFailures (retry from the
first failed record), BisectBatchOnFunctionError, MaximumRetryAttempts and the OnFailure SQS
destination. It runs when asked (`pump()`), never in a background thread, so tests stay
deterministic.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from needle_local.event_filter import any_filter_matches


@dataclass
class Mapping:
    function_name: str
    stream_arn: str
    batch_size: int
    filters: list[dict[str, Any]]
    report_item_failures: bool
    bisect: bool
    max_retries: int
    on_failure_queue_url: str | None
    key_attributes: tuple[str, ...]
    iterators: dict[str, str] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)


class StreamPump:
    def __init__(self, streams: Any, lambda_client: Any, sqs: Any, region: str) -> None:
        self._streams = streams
        self._lambda = lambda_client
        self._sqs = sqs
        self._region = region
        self.mappings: list[Mapping] = []

    def add(self, mapping: Mapping) -> None:
        self.mappings.append(mapping)

    def pump(self) -> int:
        """Read every shard once and deliver what passes the filters; returns records read."""
        read = 0
        for mapping in self.mappings:
            seen, records = self._read(mapping)
            read += seen
            mapping.pending.extend(records)
            pending = mapping.pending
            while pending:
                batch, pending[:] = pending[: mapping.batch_size], pending[mapping.batch_size :]
                self._deliver(mapping, batch, attempt=0)
        return read

    def _read(self, mapping: Mapping) -> tuple[int, list[dict[str, Any]]]:
        stream = self._streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]
        out: list[dict[str, Any]] = []
        for shard in stream["Shards"]:
            shard_id = shard["ShardId"]
            iterator = (
                mapping.iterators.get(shard_id)
                or self._streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while True:
                page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = page["NextShardIterator"]
                out.extend(self._lambda_shape(mapping, r) for r in page["Records"])
                if not page["Records"]:
                    break
            mapping.iterators[shard_id] = iterator
        kept = [r for r in out if not self._keys_only_insert(mapping, r)]
        mapping.stats["keys_only_dropped"] += len(out) - len(kept)
        mapping.stats["read"] += len(kept)
        passed = [r for r in kept if any_filter_matches(mapping.filters, r)]
        mapping.stats["filtered_out"] += len(kept) - len(passed)
        return len(out), passed

    def _lambda_shape(self, mapping: Mapping, record: dict[str, Any]) -> dict[str, Any]:
        record = dict(record)
        record["awsRegion"] = self._region  # moto hard-codes us-east-1
        record["eventSourceARN"] = mapping.stream_arn
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        record["dynamodb"] = dynamodb
        return record

    @staticmethod
    def _keys_only_insert(mapping: Mapping, record: dict[str, Any]) -> bool:
        # moto emits an extra INSERT carrying only the keys when UpdateItem creates an item.
        image = record["dynamodb"].get("NewImage")
        return (
            record["eventName"] == "INSERT"
            and image is not None
            and set(image) <= set(mapping.key_attributes)
        )

    def _deliver(self, mapping: Mapping, batch: list[dict[str, Any]], attempt: int) -> None:
        mapping.stats["invocations"] += 1
        response = self._lambda.invoke(
            FunctionName=mapping.function_name, Payload=json.dumps({"Records": batch}, default=str).encode()
        )
        body = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response:
            remaining, function_error = batch, True
        else:
            remaining, function_error = self._unprocessed(mapping, batch, body), False
        if not remaining:
            mapping.stats["delivered"] += len(batch)
            return
        mapping.stats["delivered"] += len(batch) - len(remaining)
        mapping.stats["retried"] += len(remaining)
        if attempt >= mapping.max_retries:
            self._discard(mapping, remaining, "retries exhausted")
            return
        if function_error and mapping.bisect and len(remaining) > 1:
            half = len(remaining) // 2
            self._deliver(mapping, remaining[:half], attempt + 1)
            self._deliver(mapping, remaining[half:], attempt + 1)
            return
        self._deliver(mapping, remaining, attempt + 1)

    @staticmethod
    def _unprocessed(mapping: Mapping, batch: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
        """With ReportBatchItemFailures, AWS retries from the lowest failed sequence number."""
        if not mapping.report_item_failures or not isinstance(body, dict):
            return []
        failed = {f.get("itemIdentifier") for f in body.get("batchItemFailures") or []}
        if not failed:
            return []
        for index, record in enumerate(batch):
            if record["dynamodb"]["SequenceNumber"] in failed:
                return batch[index:]
        return batch  # an identifier we did not send: AWS retries the whole batch

    def _discard(self, mapping: Mapping, records: list[dict[str, Any]], reason: str) -> None:
        mapping.stats["sent_to_on_failure"] += len(records)
        if mapping.on_failure_queue_url is None:
            return
        # As in AWS: the destination gets the batch's coordinates, not the records.
        seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
        message = {
            "requestContext": {"condition": reason, "functionArn": mapping.function_name},
            "DDBStreamBatchInfo": {
                "streamArn": mapping.stream_arn,
                "startSequenceNumber": seqs[0],
                "endSequenceNumber": seqs[-1],
                "batchSize": len(records),
            },
        }
        self._sqs.send_message(QueueUrl=mapping.on_failure_queue_url, MessageBody=json.dumps(message))
