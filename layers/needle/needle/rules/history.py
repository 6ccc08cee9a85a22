"""An entity's recent events, kept compact beside its model so correlation needs no timeline query.

Each event is stored as a small dict of the fields rules may test (never payloads); the list
is bounded by age (the longest rule timespan) and by count, so an entity's state item stays
far below DynamoDB's 400 KB.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from needle.model.event import DeviceHints, Event, iso, parse_time

MAX_EVENTS = 300


def compact(event: Event) -> dict[str, Any]:
    return {
        "s": event.source,
        "v": event.vendor_id,
        "k": event.kind,
        "t": iso(event.time),
        "ti": event.title[:200],
        "sv": event.severity_id,
        "ta": list(event.tactics),
        "te": list(event.techniques),
        "sc": event.score,
    }


def expand(item: dict[str, Any], entity_id: str) -> Event:
    return Event(
        source=item["s"],
        vendor_id=item["v"],
        kind=item["k"],
        time=parse_time(item["t"]),
        updated_at=parse_time(item["t"]),
        title=item["ti"],
        severity_id=item["sv"],
        status="new",
        tactics=tuple(item["ta"]),
        techniques=tuple(item["te"]),
        device=DeviceHints(source=item["s"], device_id=None, hostname=None),
        user=None,
        process=None,
        console_url=None,
        finding={},
        entity_id=entity_id,
        score=item.get("sc"),
    )


def remember(history: list[dict[str, Any]], event: Event, keep: timedelta) -> list[dict[str, Any]]:
    """History with `event` added (time-ordered), minus what is older than `keep` before the newest."""
    uid = (event.source, event.vendor_id)
    merged = [h for h in history if (h["s"], h["v"]) != uid] + [compact(event)]
    merged.sort(key=lambda h: h["t"])
    horizon = iso(parse_time(merged[-1]["t"]) - keep)
    return [h for h in merged if h["t"] >= horizon][-MAX_EVENTS:]


def recall(history: list[dict[str, Any]], entity_id: str, exclude: Event | None = None) -> list[Event]:
    skip = (exclude.source, exclude.vendor_id) if exclude else None
    return [expand(h, entity_id) for h in history if (h["s"], h["v"]) != skip]
