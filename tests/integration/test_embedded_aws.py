"""The embedded AWS behaves like the deployed stack where Needle depends on it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import SimClock
from tests.support import mde_alert, scan

pytestmark = pytest.mark.integration

TABLES = ("EventsTable", "EntitiesTable", "ModelsTable", "IncidentsTable", "StateTable")


def test_every_table_of_the_template_exists_with_the_events_stream(aws: Any) -> None:
    dynamodb = aws.client("dynamodb")
    for logical in TABLES:
        table = dynamodb.describe_table(TableName=aws.physical[logical])["Table"]
        assert table["TableStatus"] == "ACTIVE", logical
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", logical
    events = dynamodb.describe_table(TableName=aws.physical["EventsTable"])["Table"]
    assert events["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"


def test_schedule_tick_runs_the_poller_with_the_source_from_its_input(aws: Any) -> None:
    [report] = aws.tick()
    assert report["source"] == "mde"
    assert report["complete"] is True
    assert report["pages"] >= 1


def test_score_write_back_is_filtered_out_of_the_stream(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    mde.add_alert(mde_alert("da1_-1", sim_clock.now - timedelta(minutes=9)), visible_at=sim_clock.now)
    aws.tick()
    aws.settle()
    [mapping] = aws.pump.mappings
    # one INSERT delivered; the MODIFY that wrote the score back was read and filtered out
    assert mapping.stats["delivered"] == 1
    assert mapping.stats["filtered_out"] == 1
    assert mapping.stats["invocations"] == 1


def test_poison_record_goes_to_the_on_failure_queue_and_does_not_block_the_stream(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    # GIVEN an Events item no normalizer wrote (missing every attribute ProcessEvents needs)
    aws.client("dynamodb").put_item(
        TableName=aws.physical["EventsTable"],
        Item={
            "entity_id": {"S": "host:broken"},
            "sk": {"S": "2026-01-01T00:00:00.000Z#edr_alert#x:1"},
            "kind": {"S": "edr_alert"},
        },
    )
    # AND a real alert after it
    mde.add_alert(mde_alert("da2_-2", sim_clock.now - timedelta(minutes=9)), visible_at=sim_clock.now)
    aws.tick()
    aws.settle()
    [mapping] = aws.pump.mappings
    # THEN the batch was retried from the poison record on, then its coordinates went to the
    # on-failure destination (as in AWS: the batch from the failed record, not the records)
    assert mapping.stats["retried"] >= mapping.max_retries
    messages = aws.client("sqs").receive_message(QueueUrl=aws.physical["ProcessEventsFailures"])["Messages"]
    info = json.loads(messages[0]["Body"])["DDBStreamBatchInfo"]
    assert info["batchSize"] == mapping.stats["sent_to_on_failure"] >= 1
    assert info["streamArn"] == mapping.stream_arn
    # AND the real alert behind it was processed and investigated
    scored = [i for i in scan(aws, "EventsTable") if i["entity_id"]["S"] == "host:fin-ws-042"]
    assert "score" in scored[0]
    assert [e["status"] for e in aws.executions()] == ["SUCCEEDED"]


def test_handler_output_lands_in_the_function_log_group(aws: Any) -> None:
    aws.tick()
    lines = aws.function_logs("PollSourceFunction")
    assert any('"message":"poll finished"' in line for line in lines)


def test_notification_carries_filterable_attributes(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    mde.add_alert(mde_alert("da3_-3", sim_clock.now - timedelta(minutes=9)), visible_at=sim_clock.now)
    aws.tick()
    aws.settle()
    [message] = aws.inbox()
    assert set(message.attributes) == {"severity", "verdict", "source", "entity"}
    assert message.attributes["entity"] == "host:fin-ws-042"
    assert "Report: https://" in message.message  # the presigned link
