"""PollSource: one bounded incremental poll of the EDR named in the schedule's input ({"source": "mde"})."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from needle.config import bind_tables, region, required
from needle.ingest.poller import PollSettings, poll
from needle.ingest.ports import AlertFeed
from needle.model.event import parse_time
from needle.sources.factory import SOURCES, Endpoints, build_feed
from needle.store.entities import DynamoEntityResolver
from needle.store.events import DynamoEventStore
from needle.store.quarantine import S3Quarantine
from needle.store.state import DynamoCheckpoints, PollLock

logger = Logger()
tracer = Tracer()
metrics = Metrics()

bind_tables()
SETTINGS = PollSettings(
    lookback=timedelta(minutes=int(required("POLL_LOOKBACK_MINUTES"))),
    overlap=timedelta(seconds=int(required("POLL_OVERLAP_SECONDS"))),
)
_http = httpx.Client(timeout=httpx.Timeout(20.0, connect=5.0))
_quarantine = S3Quarantine(boto3.client("s3", region_name=region()), required("REPORTS_BUCKET"))
_resolver = DynamoEntityResolver()
_lock = PollLock()
# The lock outlives the run's deadline a little: a run killed at its timeout is surely gone.
LOCK_MARGIN_SECONDS = 10
# Feeds live with the container: tokens and alias caches are reused while it is warm.
_feeds: dict[str, AlertFeed] = {}


def _feed(source: str) -> AlertFeed:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    if source not in _feeds:
        prefix = source.upper()
        secret: Any = parameters.get_secret(required(f"{prefix}_SECRET_ARN"), transform="json", max_age=300)
        endpoints = Endpoints(
            api_base_url=required(f"{prefix}_API_BASE_URL"),
            login_base_url=os.environ.get(f"{prefix}_LOGIN_BASE_URL") or None,
        )
        _feeds[source] = build_feed(source, secret, endpoints, _http)
    return _feeds[source]


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    source = str(event["source"])
    # The scheduled time from EventBridge is this poll's "now" (absent on a manual invoke).
    now = parse_time(event["time"]) if event.get("time") else datetime.now(UTC)
    holder = context.aws_request_id
    if not _lock.hold(
        source, holder, seconds=context.get_remaining_time_in_millis() / 1000 + LOCK_MARGIN_SECONDS
    ):
        logger.info(
            "poll skipped: the previous poll of this source is still running", extra={"source": source}
        )
        return {"source": source, "skipped": True}
    try:
        report = poll(
            _feed(source),
            DynamoEventStore(),
            _resolver,
            DynamoCheckpoints(),
            _quarantine,
            now=now,
            settings=SETTINGS,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    finally:
        _lock.release(source, holder)
    summary = report.as_dict()
    metrics.add_dimension(name="source", value=source)
    for outcome in ("created", "updated", "quarantined"):
        metrics.add_metric(
            name=f"Alerts{outcome.capitalize()}", unit=MetricUnit.Count, value=summary[outcome]
        )
    logger.info("poll finished", extra={"poll": summary})
    return summary
