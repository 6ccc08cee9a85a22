"""SentinelOne threats as an ordered AlertFeed for the poller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from needle.model.event import Event
from needle.sources.sentinelone import normalize as s1_normalize
from needle.sources.sentinelone.client import SentinelOneClient


@dataclass
class SentinelOneFeed:
    client: SentinelOneClient
    console_url: str
    source: str = "sentinelone"
    ordered: bool = True  # the API sorts by updatedAt ascending, so any page is a safe checkpoint

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.threats_updated(since, until)

    def cursor_of(self, raw: dict[str, Any]) -> datetime:
        return s1_normalize.cursor_of(raw)

    def normalize(self, raw: dict[str, Any]) -> Event:
        return s1_normalize.normalize(raw, self.console_url)
