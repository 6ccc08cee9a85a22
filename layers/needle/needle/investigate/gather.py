"""Gather: the entity's timeline and incidents around the alert, from Needle's own data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from needle.model.event import Event, parse_time
from needle.process_events import summary

WINDOW = timedelta(hours=24)
MAX_EVENTS = 200  # keeps the Step Functions state far below its 256 KB limit


class TimelineReader(Protocol):
    def timeline(self, entity_id: str, start: Any, end: Any, limit: int = 500) -> list[Event]: ...


class IncidentReader(Protocol):
    def get(self, incident_id: str) -> dict[str, Any] | None: ...


def gather(state: dict[str, Any], timeline: TimelineReader, incidents: IncidentReader) -> dict[str, Any]:
    alert = state["event"]
    at = parse_time(alert["time"])
    events = timeline.timeline(alert["entity_id"], at - WINDOW, at + WINDOW, limit=MAX_EVENTS)
    found = [i for i in (incidents.get(x) for x in alert.get("incident_ids", [])) if i]
    return {
        **state,
        "timeline": [summary(e) for e in events],
        "incidents": found,
        "window_hours": WINDOW.total_seconds() / 3600,
    }
