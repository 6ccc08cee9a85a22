"""Delivers DynamoDB stream records to Lambda as the AWS event source mapping does.

Honoured from the mapping: FilterCriteria, BatchSize, ReportBatchItemFailures (retry from the
first failed record), BisectBatchOnFunctionError, MaximumRetryAttempts and the OnFailure SQS
destination. It runs when asked (`pump()`), never in a background thread, so tests stay
deterministic.

Records are read from moto's stream shard itself, as the Lambda service reads the stream inside
AWS: through GetRecords, every record (the score write-backs' MODIFY images included, which
the filter then drops) was serialized by moto and parsed again by botocore, a tenth of a
replay's time. `tests/integration/test_stream_pump.py` pins the records to GetRecords' answer.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.dynamodb.models import dynamodb_backends

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
    read_up_to: dict[str, int] = field(default_factory=dict)  # shard id -> records read
    pending: list[dict[str, Any]] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)


class ShardRecords:
    """The records of a table's stream in moto, in order, by position."""

    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region

    def read(self, stream_arn: str, read_up_to: dict[str, int]) -> list[dict[str, Any]]:
        """Records past `read_up_to[shard id]` of every shard; moves the position past them."""
        # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
        table_name = stream_arn.split(":", 5)[5].split("/")[1]
        table = dynamodb_backends[self._account_id][self._region].get_table(table_name)
        shard = table.stream_shard
        if shard is None:
            return []
        start = read_up_to.get(shard.id, 0)
        records = [r.to_json() for r in shard.items[start:]]
        read_up_to[shard.id] = start + len(records)
        return records


class StreamPump:
    def __init__(self, shards: ShardRecords, lambda_client: Any, sqs: Any, region: str) -> None:
        self._shards = shards
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
        out = [
            self._lambda_shape(mapping, r) for r in self._shards.read(mapping.stream_arn, mapping.read_up_to)
        ]
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
            # moto's clock is naive UTC; Lambda gets epoch seconds.
            moment = created if created.tzinfo else created.replace(tzinfo=UTC)
            dynamodb["ApproximateCreationDateTime"] = int(moment.timestamp())
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
            FunctionName=mapping.function_name,
            Payload=json.dumps({"Records": batch}, default=_json_value).encode(),
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


def _json_value(value: Any) -> Any:
    """What Lambda's JSON event carries for values JSON has no type for: binary as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return str(value)
