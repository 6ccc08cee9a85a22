"""Graph security alerts_v2 as an AlertFeed for the poller (ordered: ascending lastUpdateDateTime)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from needle.model.event import Event
from needle.sources.graph import normalize as graph_normalize
from needle.sources.graph.client import GraphClient, cursor_of


@dataclass
class GraphFeed:
    client: GraphClient
    source: str = "graph"
    # `$orderby=lastUpdateDateTime asc` is honoured, so the poller may checkpoint after any page.
    ordered: bool = True

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.alerts_updated(since, until)

    def cursor_of(self, raw: dict[str, Any]) -> datetime:
        return cursor_of(raw)

    def normalize(self, raw: dict[str, Any]) -> Event:
        return graph_normalize.normalize(raw)
