"""PollSource: one incremental poll of the EDR named in the schedule's input ({"source": "mde"})."""

from __future__ import annotations

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
from needle.sources.http import EntraClientCredentials
from needle.sources.mde.client import SCOPE as MDE_SCOPE
from needle.sources.mde.client import MdeClient
from needle.sources.mde.feed import MdeFeed
from needle.store.entities import DynamoEntityResolver
from needle.store.events import DynamoEventStore
from needle.store.quarantine import S3Quarantine
from needle.store.state import DynamoCheckpoints

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
_feeds: dict[str, AlertFeed] = {}  # lives with the container, so tokens are reused while warm


def _feed(source: str) -> AlertFeed:
    if source not in _feeds:
        if source != "mde":
            raise ValueError(f"unknown source {source!r}")
        secret: Any = parameters.get_secret(required("MDE_SECRET_ARN"), transform="json", max_age=300)
        tokens = EntraClientCredentials(
            http=_http,
            login_base_url=required("MDE_LOGIN_BASE_URL"),
            tenant_id=secret["tenant_id"],
            client_id=secret["client_id"],
            client_secret=secret["client_secret"],
            scope=MDE_SCOPE,
        )
        _feeds[source] = MdeFeed(MdeClient(_http, required("MDE_API_BASE_URL"), tokens))
    return _feeds[source]


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    source = str(event["source"])
    report = poll(
        _feed(source),
        DynamoEventStore(),
        DynamoEntityResolver(),
        DynamoCheckpoints(),
        _quarantine,
        now=datetime.now(UTC),
        settings=SETTINGS,
    )
    summary = report.as_dict()
    for outcome in ("created", "updated", "quarantined"):
        metrics.add_metric(
            name=f"Alerts{outcome.capitalize()}", unit=MetricUnit.Count, value=summary[outcome]
        )
    logger.info("poll finished", extra={"poll": summary})
    return summary
