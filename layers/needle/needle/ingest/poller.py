"""Incremental polling of one source: fetch, normalize, resolve, store, then checkpoint.

Invariant: the checkpoint moves only past records that are durably stored (or quarantined).
A crash anywhere before `save` makes the next run re-read from the previous checkpoint (less
the overlap); the idempotent sink turns those re-reads into no-ops, so nothing is lost or
duplicated.

Runs are bounded: the poller stops at a page (ordered feeds) or window (unordered feeds)
boundary once `time_left()` drops under the reserve, checkpoints, and the next tick goes on.
Ordered feeds checkpoint after every page at the newest update time seen; unordered feeds are
read in windows `since <= updated < since + window`, each read to its end before its upper
bound becomes the checkpoint, and the live edge (within `overlap` of now) is read unbounded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from needle.ingest.ports import (
    AlertFeed,
    CheckpointStore,
    EntityResolver,
    EventSink,
    Quarantine,
)
from needle.model.event import Event, MalformedRecordError

MAX_EMPTY_WINDOW = timedelta(days=30)
OUTCOMES = ("created", "updated", "unchanged", "duplicate", "quarantined")


@dataclass(frozen=True)
class PollSettings:
    lookback: timedelta = timedelta(days=1)
    overlap: timedelta = timedelta(minutes=5)
    window: timedelta = timedelta(hours=6)
    reserve_seconds: float = 20.0


@dataclass
class PollReport:
    source: str
    since: datetime
    cursor: datetime | None = None
    pages: int = 0
    complete: bool = True
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "since": self.since.isoformat(),
            "cursor": self.cursor.isoformat() if self.cursor else None,
            "pages": self.pages,
            "complete": self.complete,
            **{k: self.outcomes[k] for k in OUTCOMES},
        }


def poll(
    feed: AlertFeed,
    sink: EventSink,
    entities: EntityResolver,
    checkpoints: CheckpointStore,
    quarantine: Quarantine,
    now: datetime,
    settings: PollSettings = PollSettings(),
    time_left: Callable[[], float] = lambda: math.inf,
) -> PollReport:
    """Run one bounded incremental pass over `feed` and return what happened."""
    previous = checkpoints.load(feed.source)
    since = previous - settings.overlap if previous else now - settings.lookback
    run = _Run(feed, sink, entities, checkpoints, quarantine, PollReport(feed.source, since), previous, now)
    if feed.ordered:
        run.ordered(since, settings, time_left)
    else:
        run.windowed(since, now, settings, time_left)
    run.report.cursor = run.cursor
    return run.report


@dataclass
class _Run:
    feed: AlertFeed
    sink: EventSink
    entities: EntityResolver
    checkpoints: CheckpointStore
    quarantine: Quarantine
    report: PollReport
    cursor: datetime | None
    now: datetime
    seen: set[tuple[str, datetime]] = field(default_factory=set)

    def ordered(self, since: datetime, settings: PollSettings, time_left: Callable[[], float]) -> None:
        for page in self.feed.pages(since, None):
            newest = self._ingest(page)
            self._advance(newest)
            if time_left() < settings.reserve_seconds:
                self.report.complete = False
                return

    def windowed(
        self, since: datetime, now: datetime, settings: PollSettings, time_left: Callable[[], float]
    ) -> None:
        start, width = since, settings.window
        while True:
            end = start + width
            live = end >= now - settings.overlap
            newest: datetime | None = None
            for page in self.feed.pages(start, None if live else end):
                found = self._ingest(page)
                if found is not None and (newest is None or found > newest):
                    newest = found
            if live:
                # The live edge checkpoints at the newest vendor time seen, so skew between the
                # vendor's clock and ours cannot skip anything.
                self._advance(newest)
                return
            # A closed window was read to its end: its bound is a safe checkpoint. Empty history
            # is crossed in widening windows (one request each) instead of one per `window`.
            self._advance(end)
            width = settings.window if newest is not None else min(width * 2, MAX_EMPTY_WINDOW)
            if time_left() < settings.reserve_seconds:
                self.report.complete = False
                return
            start = end

    def _advance(self, candidate: datetime | None) -> None:
        # Never past our own clock: one record stamped in 2099 must not make every later run
        # look only for alerts updated after 2099.
        if candidate is not None:
            candidate = min(candidate, self.now)
        if candidate is not None and (self.cursor is None or candidate > self.cursor):
            self.checkpoints.save(self.feed.source, candidate)
            self.cursor = candidate

    def _ingest(self, page: Iterable[dict[str, Any]]) -> datetime | None:
        """Normalize and resolve the page's records, then store the good ones in one call."""
        self.report.pages += 1
        newest: datetime | None = None
        ready: list[Event] = []
        for raw in page:
            outcome, updated = self._prepare(raw, ready)
            if outcome is not None:
                self.report.outcomes[outcome] += 1
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        if ready:
            self.report.outcomes.update(o.value for o in self.sink.store_page(ready))
        return newest

    def _prepare(self, raw: dict[str, Any], ready: list[Event]) -> tuple[str | None, datetime | None]:
        """Append the record's event to `ready`, or say why it is not stored (an outcome)."""
        try:
            event = self.feed.normalize(raw)
        except MalformedRecordError as exc:
            return self._quarantine(raw, str(exc))
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A shape the normalizer did not foresee must not stop the batch either.
            return self._quarantine(raw, f"unexpected record shape ({type(exc).__name__})")
        # Duplicated pages (or an alert moving between pages while we read) show the same
        # version twice in one pass; storing it once is enough.
        version = (event.vendor_id, event.updated_at)
        if version in self.seen:
            return "duplicate", event.updated_at
        self.seen.add(version)
        try:
            # When the device was seen with these IPs: the alert's activity, not a later update
            # (an analyst resolving it a week on must not stretch its IP leases to then).
            entity_id = self.entities.resolve(event.device, event.time)
        except ValueError as exc:
            return self._quarantine(raw, f"no entity: {exc}")
        ready.append(replace(event, entity_id=entity_id))
        return None, event.updated_at

    def _quarantine(self, raw: Any, reason: str) -> tuple[str, datetime | None]:
        # A record re-read through the overlap is already kept: counted as a duplicate, so the
        # quarantined count (and its metric) is one per bad record, not one per sighting.
        outcome = "quarantined" if self.quarantine.put(self.feed.source, reason, raw) else "duplicate"
        try:
            return outcome, self.feed.cursor_of(raw)
        except (MalformedRecordError, KeyError, TypeError, ValueError, AttributeError):
            return outcome, None
