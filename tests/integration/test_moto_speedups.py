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
from botocore.exceptions import ClientError
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
    answers.extend(_updates(client, key))
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
    projections: list[dict[str, Any]] = [
        {"ProjectionExpression": "#s, uid, #r, finding, nothing, absent"}
        | {"ExpressionAttributeNames": {"#s": "severity_id", "#r": "raw"}},
        {"ProjectionExpression": "finding.device.ip, tactics[2].deep"},
    ]
    for projection in projections:
        answers.append(
            client.query(
                TableName="t",
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "host:h2"}},
                **projection,
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


PLAIN_SET = "SET #s = :s, #e = :e, #l = :l, #n = :n"
PLAIN_NAMES = {"#s": "score", "#e": "explanation", "#l": "incident_ids", "#n": "suppressed"}
PLAIN_VALUES: dict[str, Any] = {
    ":s": {"N": "42"},
    ":e": {"S": "again — \u00e9t\u00e9"},
    ":l": {"L": [{"S": "inc-1"}, {"M": {"a": {"NULL": True}, "b": {"N": "-1.5"}}}]},
    ":n": {"BOOL": True},
}


def _updates(client: Any, key: dict[str, Any]) -> list[Any]:
    """UpdateItems the fast path takes (plain SET, as pynamodb writes them) and those it leaves
    to moto (creating the item, failed conditions, sets, key and index attributes, bad
    placeholders)."""
    answers: list[Any] = []

    def update(**request: Any) -> None:
        try:
            answers.append(client.update_item(TableName="t", **request))
        except ClientError as error:
            answers.append(error.response["Error"])

    update(
        Key=key,
        UpdateExpression=PLAIN_SET,
        ExpressionAttributeNames=PLAIN_NAMES,
        ExpressionAttributeValues=PLAIN_VALUES,
    )
    # As pynamodb sends it.
    update(
        Key=key,
        UpdateExpression="SET #0 = :0",
        ExpressionAttributeNames={"#0": "score"},
        ExpressionAttributeValues={":0": {"N": "41"}},
        ReturnValues="NONE",
        ReturnConsumedCapacity="TOTAL",
    )
    # A lease refresh and a population increment, as Needle writes them.
    first_seen = "SET #0 = if_not_exists (#0, :0), #1 = :1"
    for first in ("first_seen", "never_set"):
        update(
            Key=key,
            UpdateExpression=first_seen,
            ExpressionAttributeNames={"#0": first, "#1": "last_seen"},
            ExpressionAttributeValues={":0": {"S": "2026-11-01"}, ":1": {"S": "2026-11-02"}},
        )
    update(
        Key=key,
        UpdateExpression="SET #0 = if_not_exists(#1, :0)",
        ExpressionAttributeNames={"#0": "copied", "#1": "blank"},
        ExpressionAttributeValues={":0": {"S": "unused"}},
    )
    for name, amount in (("entities", "1"), ("entities", "2.5"), ("severity_id", "-1"), ("title", "1")):
        update(
            Key=key,
            UpdateExpression="ADD #0 :0",
            ExpressionAttributeNames={"#0": name},
            ExpressionAttributeValues={":0": {"N": amount}},
            ReturnConsumedCapacity="TOTAL",
        )
    update(
        Key={"pk": {"S": "pop#x"}, "sk": {"S": "shard#0"}},
        UpdateExpression="ADD #0 :0",
        ExpressionAttributeNames={"#0": "entities"},
        ExpressionAttributeValues={":0": {"N": "1"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "7"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "title"},
        ExpressionAttributeValues={":s": {"S": "x" * 500_000}},
    )
    new_key = {"pk": {"S": "host:new"}, "sk": {"S": "2026-11-02"}}
    update(
        Key=new_key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "1"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ConditionExpression="attribute_exists(#s)",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "2"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "tags"},
        ExpressionAttributeValues={":t": {"SS": []}},
    )
    update(
        Key=key,
        UpdateExpression="SET #u = :u",
        ExpressionAttributeNames={"#u": "uid"},
        ExpressionAttributeValues={":u": {"N": "5"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #k = :k",
        ExpressionAttributeNames={"#k": "sk"},
        ExpressionAttributeValues={":k": {"S": "z"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "score", "#x": "x"},
        ExpressionAttributeValues={":s": {"N": "3"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "three"}},
    )
    update(
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "4"}},
        ReturnValues="ALL_NEW",
    )
    try:
        client.put_item(TableName="t", Item={**key, "a": {"S": "x" * 300_000}, "b": {"S": "y" * 300_000}})
    except ClientError as error:
        answers.append(error.response["Error"])
    answers.append(client.get_item(TableName="t", Key=key)["Item"])
    _conditional_updates(update, key)
    answers.append(client.get_item(TableName="t", Key=key)["Item"])
    return answers


def _conditional_updates(update: Any, key: dict[str, Any]) -> None:
    """Leases as Needle widens them: the fast path takes a condition that holds, moto the rest."""
    names = {"#0": "first_seen", "#1": "last_seen"}
    widen = "SET #0 = if_not_exists(#0, :0), #1 = :0"
    later = "attribute_not_exists(#1) OR #1 < :0"
    for stamp in ("2026-11-03", "2026-10-30"):  # holds, then fails (older than last_seen)
        update(
            Key=key,
            UpdateExpression=widen,
            ConditionExpression=later,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":0": {"S": stamp}},
        )
    for stamp in ("2026-10-30", "2026-12-01"):  # first_seen moves back; never forward
        update(
            Key=key,
            UpdateExpression="SET #0 = :0",
            ConditionExpression="#0 > :0",
            ExpressionAttributeNames={"#0": "first_seen"},
            ExpressionAttributeValues={":0": {"S": stamp}},
        )
    update(  # a name only the condition uses
        Key=key,
        UpdateExpression="SET #s = :s",
        ConditionExpression="attribute_exists(#x) AND #x = :x",
        ExpressionAttributeNames={"#s": "score", "#x": "blank"},
        ExpressionAttributeValues={":s": {"N": "5"}, ":x": {"S": ""}},
    )
    update(  # an unused value placeholder: moto refuses it
        Key=key,
        UpdateExpression="SET #s = :s",
        ConditionExpression="attribute_exists(#s)",
        ExpressionAttributeNames={"#s": "score"},
        ExpressionAttributeValues={":s": {"N": "7"}, ":unused": {"N": "8"}},
    )


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
    assert len(original) == len(patched) == 42
    for number, (want, got) in enumerate(zip(original, patched, strict=True)):
        assert got == want, f"answer {number} differs"
    # The comparison means something: the items really came back, binary and nested alike.
    assert original[0]["raw"] == {"B": b"\x00\x01packed\x04"}
    assert [i["sk"]["S"][14:16] for i in original[32]] == ["07", "04"]
    updated = original[23]
    assert updated["score"] == {"N": "4"}
    assert updated["incident_ids"] == PLAIN_VALUES[":l"]
    assert updated["entities"] == {"N": "3.5"}
    assert updated["first_seen"] == {"S": "2026-11-01"}
    assert original[22]["Code"] == "ValidationException"  # the oversized put
    assert set(original[36][0]) == {"severity_id", "uid", "raw", "finding", "nothing"}  # projected
    assert set(original[37][0]) == {"finding", "tactics"}  # paths: moto's own projection
    assert {"Code", "Message"} <= set(original[18])  # moto's own errors came back, patched too
    # The lease widened by conditions that held, and left alone by those that did not
    assert [original[n]["Code"] for n in (25, 27)] == ["ConditionalCheckFailedException"] * 2
    leased = original[30]
    assert (leased["first_seen"], leased["last_seen"]) == ({"S": "2026-10-30"}, {"S": "2026-11-03"})


def test_wire_form_refuses_what_moto_must_encode_itself() -> None:
    assert moto_speedups.wire_form({"S": "x"}) == {"S": "x"}
    assert moto_speedups.wire_form({"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}}) is not None
    assert moto_speedups.wire_form({"B": "AAE="}) is None  # binary: moto base64-encodes it
    assert moto_speedups.wire_form({"L": [{"S": "x"}, {"BS": ["AA=="]}]}) is None
    assert moto_speedups.wire_form({"BOOL": "true"}) is None  # moto coerces loose booleans
    assert moto_speedups.wire_form({"S": "x", "N": "1"}) is None


class _TookMotosPathError(Exception):
    pass


def test_plain_set_add_and_holding_conditions_take_the_fast_path_and_the_rest_takes_motos(
    fresh_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(handler: Any) -> Any:
        raise _TookMotosPathError

    moto_speedups.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        key = {"pk": {"S": "a"}}
        client.put_item(TableName="t", Item=key)
        monkeypatch.setattr(moto_speedups, "_original_update_item", refuse)
        client.update_item(
            TableName="t",
            Key=key,
            UpdateExpression=PLAIN_SET,
            ExpressionAttributeNames=PLAIN_NAMES,
            ExpressionAttributeValues=PLAIN_VALUES,
            ReturnConsumedCapacity="TOTAL",
        )
        client.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET #0 = if_not_exists (#0, :0), #1 = :1 ",
            ExpressionAttributeNames={"#0": "first_seen", "#1": "last_seen"},
            ExpressionAttributeValues={":0": {"S": "a"}, ":1": {"S": "b"}},
        )
        client.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="ADD #0 :0",
            ExpressionAttributeNames={"#0": "score"},
            ExpressionAttributeValues={":0": {"N": "1"}},
        )
        client.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET #1 = :1",
            ConditionExpression="attribute_not_exists(#1) OR #1 < :1",
            ExpressionAttributeNames={"#1": "last_seen"},
            ExpressionAttributeValues={":1": {"S": "c"}},
        )
        item = client.get_item(TableName="t", Key=key)["Item"]
        assert (item["score"], item["first_seen"], item["last_seen"]) == ({"N": "43"}, {"S": "a"}, {"S": "c"})
        with pytest.raises(_TookMotosPathError):  # a condition that fails: moto raises its error
            client.update_item(
                TableName="t",
                Key=key,
                UpdateExpression="SET #s = :s",
                ConditionExpression="attribute_not_exists(#s)",
                ExpressionAttributeNames={"#s": "score"},
                ExpressionAttributeValues={":s": {"N": "2"}},
            )


def test_requests_go_unsigned_but_s3_and_presigned_urls_keep_their_signature(fresh_moto: None) -> None:
    moto_speedups.install()
    with mock_aws():
        sent: list[Any] = []
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        for client in (s3, sqs):
            client.meta.events.register("before-send", lambda request, **_: sent.append(request.headers))
        s3.create_bucket(Bucket="reports")
        sqs.create_queue(QueueName="inbox")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "reports", "Key": "r.html"})
    assert "Authorization" in sent[0]
    assert "Authorization" not in sent[1]
    assert "Signature=" in url


def test_user_agent_is_the_same_with_its_parts_memoized(fresh_moto: None) -> None:
    def user_agent() -> str:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            sent: list[bytes] = []
            sqs.meta.events.register(
                "before-send", lambda request, **_: sent.append(request.headers["User-Agent"])
            )
            sqs.create_queue(QueueName="inbox")
            sqs.list_queues()
        return sent[-1].decode()

    moto_speedups.uninstall()
    want = user_agent()
    moto_speedups.install()
    assert user_agent() == want
    assert "Botocore/" in want
