"""Investigation step Gather: the entity's timeline and incidents around the alert."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.config import bind_tables
from needle.investigate.gather import gather
from needle.store.events import DynamoEventStore
from needle.store.incidents import DynamoIncidentStore

logger = Logger()
tracer = Tracer()
bind_tables()
_timeline = DynamoEventStore()
_incidents = DynamoIncidentStore()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = gather(event, _timeline, _incidents)
    logger.info(
        "gathered", extra={"investigation_id": event["investigation_id"], "events": len(state["timeline"])}
    )
    return state
