"""Incremental polling of one source: fetch, normalize, resolve, store, then checkpoint.

Invariant: the checkpoint moves only after every record at or before it is durably stored
(or quarantined). A crash anywhere before `save` makes the next run re-read the same window;
the idempotent sink turns those re-reads into no-ops, so nothing is lost or duplicated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from needle.ingest.ports import (
    AlertFeed,
    CheckpointStore,
    EntityResolver,
    EventSink,
    Quarantine,
    WriteOutcome,
)
from needle.model.event import MalformedRecordError


@dataclass(frozen=True)
class PollSettings:
    lookback: timedelta = timedelta(days=1)
    overlap: timedelta = timedelta(minutes=5)


@dataclass
class PollReport:
    source: str
    since: datetime
    cursor: datetime | None = None
    pages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "since": self.since.isoformat(),
            "cursor": self.cursor.isoformat() if self.cursor else None,
            "pages": self.pages,
            **{k: self.outcomes[k] for k in ("created", "updated", "unchanged", "duplicate", "quarantined")},
        }


def poll(
    feed: AlertFeed,
    sink: EventSink,
    entities: EntityResolver,
    checkpoints: CheckpointStore,
    quarantine: Quarantine,
    now: datetime,
    settings: PollSettings = PollSettings(),
) -> PollReport:
    """Run one incremental pass over `feed` and return what happened."""
    previous = checkpoints.load(feed.source)
    since = previous - settings.overlap if previous else now - settings.lookback
    report = PollReport(source=feed.source, since=since)
    newest = previous
    seen: set[tuple[str, datetime]] = set()
    for page in feed.pages_since(since):
        report.pages += 1
        for raw in page:
            outcome, updated = _ingest_one(feed, sink, entities, quarantine, raw, seen)
            report.outcomes[outcome] += 1
            if updated is not None and (newest is None or updated > newest):
                newest = updated
    if newest is not None and newest != previous:
        checkpoints.save(feed.source, newest)
    report.cursor = newest
    return report


def _ingest_one(
    feed: AlertFeed,
    sink: EventSink,
    entities: EntityResolver,
    quarantine: Quarantine,
    raw: dict[str, Any],
    seen: set[tuple[str, datetime]],
) -> tuple[str, datetime | None]:
    try:
        event = feed.normalize(raw)
    except MalformedRecordError as exc:
        quarantine.put(feed.source, str(exc), raw)
        return "quarantined", _safe_cursor(feed, raw)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A shape the normalizer did not foresee must not stop the batch either.
        quarantine.put(feed.source, f"unexpected record shape ({type(exc).__name__})", raw)
        return "quarantined", _safe_cursor(feed, raw)
    # Duplicated pages (or an alert moving between pages while we read) show the same
    # version twice in one pass; storing it once is enough.
    version = (event.vendor_id, event.updated_at)
    if version in seen:
        return "duplicate", event.updated_at
    seen.add(version)
    entity_id = entities.resolve(event.device, event.updated_at)
    outcome: WriteOutcome = sink.store(replace(event, entity_id=entity_id))
    return outcome.value, event.updated_at


def _safe_cursor(feed: AlertFeed, raw: dict[str, Any]) -> datetime | None:
    try:
        return feed.cursor_of(raw)
    except (MalformedRecordError, KeyError, TypeError, ValueError, AttributeError):
        return None
