"""CrowdStrike Falcon Alerts v2 as an AlertFeed for the poller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from needle.model.event import Event
from needle.sources.crowdstrike import normalize as crowdstrike_normalize
from needle.sources.crowdstrike.client import CrowdStrikeClient, cursor_of


@dataclass
class CrowdStrikeFeed:
    client: CrowdStrikeClient
    source: str = "crowdstrike"
    ordered: bool = True  # the query sorts by updated_timestamp|asc and pages come in that order

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.alerts_updated(since, until)

    def cursor_of(self, raw: dict[str, Any]) -> datetime:
        return cursor_of(raw)

    def normalize(self, raw: dict[str, Any]) -> Event:
        return crowdstrike_normalize.normalize(raw)
