"""The MDE API as an AlertFeed for the poller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from needle.model.event import Event
from needle.sources.mde import normalize as mde_normalize
from needle.sources.mde.client import MdeClient, cursor_of


@dataclass
class MdeFeed:
    client: MdeClient
    source: str = "mde"
    ordered: bool = False  # /api/alerts documents no $orderby

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.alerts_updated(since, until)

    def cursor_of(self, raw: dict[str, Any]) -> datetime:
        return cursor_of(raw)

    def normalize(self, raw: dict[str, Any]) -> Event:
        return mde_normalize.normalize(raw)
