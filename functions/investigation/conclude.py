"""Investigation step Conclude: the stated verdict rule applied to the gathered evidence."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.investigate.verdict import conclude

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = conclude(event)
    logger.info(
        "concluded",
        extra={"investigation_id": event["investigation_id"], "verdict": state["conclusion"]["verdict"]},
    )
    return state
