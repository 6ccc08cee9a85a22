"""The ports ingestion needs; adapters live in needle.store, fakes in tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from needle.model.event import DeviceHints, Event


class WriteOutcome(Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class AlertFeed(Protocol):
    """One vendor API seen as pages of raw alerts by vendor update time.

    `ordered` feeds return pages in ascending update time (the poller may checkpoint after any
    page); unordered feeds are read in bounded windows `since <= updated < until` instead.
    `until` is None for the live edge, and ordered feeds are always called with None.
    """

    source: str
    ordered: bool

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]: ...

    def cursor_of(self, raw: dict[str, Any]) -> datetime: ...

    def normalize(self, raw: dict[str, Any]) -> Event: ...


class EventSink(Protocol):
    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        """Store events idempotently; one outcome per event, in order. Raises if any write
        failed: the caller then does not checkpoint, and the next run re-reads the page."""
        ...


class EntityResolver(Protocol):
    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str: ...


class CheckpointStore(Protocol):
    def load(self, source: str) -> datetime | None: ...

    def save(self, source: str, cursor: datetime) -> None: ...


class Quarantine(Protocol):
    def put(self, source: str, reason: str, raw: Any) -> bool:
        """Keep the record with its reason; False when it was already kept (a re-read)."""
        ...
