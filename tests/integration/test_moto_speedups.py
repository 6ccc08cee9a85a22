"""Contract: with needle_local.moto_speedups installed, moto answers exactly as without it.

The same requests (every AttributeValue type, nested maps and lists, binary values, base-table
and index queries with conditions, paging and descending order, a stream read) run against a
fresh moto twice, patched and unpatched, and the parsed answers must be equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from needle_local import moto_speedups

pytestmark = pytest.mark.integration

ITEMS: list[dict[str, Any]] = [
    {
        "pk": {"S": f"host:h{n % 3}"},
        "sk": {"S": f"2026-11-01T00:{n:02d}:00.000Z#edr_alert#mde:da{n}"},
        "uid": {"S": f"mde:da{n}"},
        "title": {"S": "Suspicious PowerShell — \u00e9t\u00e9 \U0001f600"},
        "severity_id": {"N": str(n % 6)},
        "score": {"N": "12.5"},
        "suppressed": {"BOOL": n % 2 == 0},
        "gone": {"NULL": True},
        "tactics": {"L": [{"S": "TA0002"}, {"N": "7"}, {"M": {"deep": {"L": [{"BOOL": False}]}}}]},
        "finding": {"M": {"device": {"M": {"ip": {"SS": ["10.0.0.1", "10.0.0.2"]}}}, "empty": {"M": {}}}},
        "counts": {"NS": ["1", "2.5"]},
        "raw": {"B": b"\x00\x01packed" + bytes([n])},
        "hashes": {"BS": [b"\xff\xfe", b"abc"]},
        "nothing": {"L": []},
        "blank": {"S": ""},
    }
    for n in range(12)
]


def _exercise() -> list[Any]:
    """Every call whose answer carries items; returns the parsed answers in order."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "uid", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_uid",
                "KeySchema": [{"AttributeName": "uid", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    for item in ITEMS:
        client.put_item(TableName="t", Item=item)
    key = {"pk": ITEMS[4]["pk"], "sk": ITEMS[4]["sk"]}
    answers: list[Any] = [client.get_item(TableName="t", Key=key)["Item"]]
    client.update_item(
        TableName="t",
        Key=key,
        UpdateExpression="SET score = :s, explanation = :e",
        ExpressionAttributeValues={":s": {"N": "99"}, ":e": {"S": "first time"}},
    )
    answers.append(client.get_item(TableName="t", Key=key, ProjectionExpression="score, explanation"))
    for forward in (True, False):
        answers.append(
            client.query(
                TableName="t",
                KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":p": {"S": "host:h1"},
                    ":a": {"S": "2026-11-01T00:02"},
                    ":b": {"S": "2026-11-01T00:09~"},
                },
                ScanIndexForward=forward,
            )["Items"]
        )
    page = client.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "host:h0"}},
        Limit=2,
    )
    answers.append(page)
    answers.append(
        client.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "host:h0"}},
            ExclusiveStartKey=page["LastEvaluatedKey"],
        )["Items"]
    )
    answers.append(
        client.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "host:none"}},
        )["Items"]
    )
    answers.append(
        client.query(
            TableName="t",
            IndexName="by_uid",
            KeyConditionExpression="uid = :u",
            ExpressionAttributeValues={":u": {"S": "mde:da5"}},
        )["Items"]
    )
    answers.append(sorted(client.scan(TableName="t")["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"])))
    answers.append(
        client.batch_get_item(
            RequestItems={"t": {"Keys": [key, {"pk": ITEMS[0]["pk"], "sk": ITEMS[0]["sk"]}]}}
        )["Responses"]["t"]
    )
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = client.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    answers.append([(r["eventName"], r["dynamodb"].get("NewImage")) for r in records])
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


@pytest.fixture
def fresh_moto() -> Iterator[None]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield
    moto_speedups.uninstall()


def _run(patched: bool) -> list[Any]:
    if patched:
        moto_speedups.install()
    else:
        moto_speedups.uninstall()
    with mock_aws():
        return _exercise()


def test_patched_moto_answers_every_item_call_exactly_as_moto_does(fresh_moto: None) -> None:
    original = _run(patched=False)
    patched = _run(patched=True)
    assert len(original) == len(patched) == 11
    for number, (want, got) in enumerate(zip(original, patched, strict=True)):
        assert got == want, f"answer {number} differs"
    # The comparison means something: the items really came back, binary and nested alike.
    assert original[0]["raw"] == {"B": b"\x00\x01packed\x04"}
    assert [i["sk"]["S"][14:16] for i in original[3]] == ["07", "04"]


def test_wire_form_refuses_what_moto_must_encode_itself() -> None:
    assert moto_speedups.wire_form({"S": "x"}) == {"S": "x"}
    assert moto_speedups.wire_form({"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}}) is not None
    assert moto_speedups.wire_form({"B": "AAE="}) is None  # binary: moto base64-encodes it
    assert moto_speedups.wire_form({"L": [{"S": "x"}, {"BS": ["AA=="]}]}) is None
    assert moto_speedups.wire_form({"BOOL": "true"}) is None  # moto coerces loose booleans
    assert moto_speedups.wire_form({"S": "x", "N": "1"}) is None
