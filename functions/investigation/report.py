"""Investigation step Report: JSON and HTML report to S3, investigation recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.config import bind_tables, region, required
from needle.investigate.report import as_html, as_json, report_key
from needle.model.event import parse_time
from needle.store.incidents import DynamoIncidentStore

logger = Logger()
tracer = Tracer()
bind_tables()
BUCKET = required("REPORTS_BUCKET")
_s3 = boto3.client("s3", region_name=region())
_incidents = DynamoIncidentStore()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    investigation_id = event["investigation_id"]
    at = parse_time(event["event"]["time"])
    keys = {}
    for ext, render, mime in (
        ("json", as_json, "application/json"),
        ("html", as_html, "text/html; charset=utf-8"),
    ):
        keys[ext] = report_key(investigation_id, at, ext)
        _s3.put_object(Bucket=BUCKET, Key=keys[ext], Body=render(event), ContentType=mime)
    report = {"bucket": BUCKET, "keys": keys, "uris": {k: f"s3://{BUCKET}/{v}" for k, v in keys.items()}}
    _incidents.record_investigation(
        investigation_id,
        {
            "investigation_id": investigation_id,
            "event_uid": event["event"]["uid"],
            "entity_id": event["event"]["entity_id"],
            "verdict": event["conclusion"]["verdict"],
            "confidence": event["conclusion"]["confidence"],
            "incident_ids": event["event"].get("incident_ids", []),
            "report": report,
            "finished_at": datetime.now(UTC).isoformat(),
        },
    )
    logger.info("report written", extra={"investigation_id": investigation_id, "uris": report["uris"]})
    # The timeline stays in the report; the state carried onward is just what Notify needs.
    return {
        "investigation_id": investigation_id,
        "event": event["event"],
        "conclusion": event["conclusion"],
        "report": report,
    }
