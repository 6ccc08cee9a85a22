"""ProcessEvents: score, correlate and investigate each new (or materially updated) alert from the
Events stream."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.config import bind_tables, region, required
from needle.investigate.starter import StepFunctionsStarter
from needle.process_events import EventProcessor
from needle.rules.engine import load_rules
from needle.store.events import DynamoEventStore, from_stream_image
from needle.store.incidents import DynamoIncidentStore
from needle.store.models import DynamoModelStore

logger = Logger()
tracer = Tracer()

bind_tables()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
models = DynamoModelStore()
incidents = DynamoIncidentStore()
core = EventProcessor(
    events=DynamoEventStore(),
    models=models,
    incidents=incidents,
    investigations=StepFunctionsStarter(
        boto3.client("stepfunctions", region_name=region()), required("STATE_MACHINE_ARN")
    ),
    rules=load_rules(),
    trigger=required("INVESTIGATION_TRIGGER"),
)


def record_handler(record: DynamoDBRecord) -> None:
    image = record.raw_event["dynamodb"]["NewImage"]
    # The stream filter passes a MODIFY only when the vendor changed the detection itself.
    outcome = core.process(from_stream_image(image), revised=record.raw_event["eventName"] == "MODIFY")
    # Ids and numbers only: alert fields carry user names and command lines.
    logger.info(
        "event processed",
        extra={
            "uid": outcome.event.uid,
            "entity_id": outcome.event.entity_id,
            "score": outcome.scored.score,
            "incidents": list(outcome.incident_ids),
            "investigation": outcome.investigation,
            "revised": outcome.revised,
        },
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> Any:
    # Entity state is read once for the batch and written once after it: the records of one
    # entity arrive in order on one shard, so nothing else writes it meanwhile. A record that
    # fails is retried by Lambda; its state is idempotent through the entity's recent uids.
    models.begin_batch([r["dynamodb"]["Keys"]["entity_id"]["S"] for r in event.get("Records", [])])
    incidents.begin_batch()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    models.end_batch()
    incidents.end_batch()
    return response
