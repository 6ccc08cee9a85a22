"""Investigation step Notify: SNS summary with filterable attributes and a presigned report link."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.config import region, required
from needle.notify.message import attributes, body, subject

logger = Logger()
tracer = Tracer()
TOPIC_ARN = required("TOPIC_ARN")
LINK_TTL = int(required("REPORT_LINK_TTL_SECONDS"))
_s3 = boto3.client("s3", region_name=region())
_sns = boto3.client("sns", region_name=region())


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = event["report"]
    link = _s3.generate_presigned_url(
        "get_object", Params={"Bucket": report["bucket"], "Key": report["keys"]["html"]}, ExpiresIn=LINK_TTL
    )
    sent = _sns.publish(
        TopicArn=TOPIC_ARN,
        Subject=subject(event),
        Message=body(event, link),
        MessageAttributes=attributes(event),  # type: ignore[arg-type]
    )
    logger.info(
        "notified", extra={"investigation_id": event["investigation_id"], "message_id": sent["MessageId"]}
    )
    return {"investigation_id": event["investigation_id"], "message_id": sent["MessageId"], "report": report}
