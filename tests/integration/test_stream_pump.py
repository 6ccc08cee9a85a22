"""StreamPump reads moto's stream shard directly: the records must be GetRecords' records."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from needle_local.stream_pump import ShardRecords

pytestmark = pytest.mark.integration


def _epoch(record: Any) -> dict[str, Any]:
    """The record with its creation time in whole epoch seconds (moto's is naive UTC)."""
    created: datetime = record["dynamodb"]["ApproximateCreationDateTime"]
    moment = created if created.tzinfo else created.replace(tzinfo=UTC)
    return {
        **record,
        "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": int(moment.timestamp())},
    }


def test_shard_records_are_get_records_answer_and_each_is_read_once() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="events",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        arn = dynamodb.describe_table(TableName="events")["Table"]["LatestStreamArn"]
        shards = ShardRecords(DEFAULT_ACCOUNT_ID, "us-east-1")
        positions: dict[str, int] = {}
        assert shards.read(arn, positions) == []
        item: dict[str, Any] = {
            "pk": {"S": "a"},
            "raw": {"B": b"\x00\x01"},
            "n": {"N": "1.50"},
            "m": {"M": {"l": {"L": []}}},
        }
        dynamodb.put_item(TableName="events", Item=item)
        dynamodb.update_item(
            TableName="events",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET score = :s",
            ExpressionAttributeValues={":s": {"N": "80"}},
        )
        first = shards.read(arn, positions)
        dynamodb.delete_item(TableName="events", Key={"pk": {"S": "a"}})
        second = shards.read(arn, positions)
        assert shards.read(arn, positions) == []

        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        answer = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    assert [r["eventName"] for r in first + second] == ["INSERT", "MODIFY", "REMOVE"]
    assert [_epoch(r) for r in first + second] == [_epoch(r) for r in answer]
    assert first[1]["dynamodb"]["NewImage"]["score"] == {"N": "80"}
