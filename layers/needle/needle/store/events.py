"""Events table: idempotent writes of normalized events and timeline reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError

from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event, Kind, iso, pack_raw, parse_time
from needle.store.items import EventItem


class DynamoEventStore:
    """Stores each vendor alert once; a changed alert is updated in place (a MODIFY, which the
    ProcessEvents stream filter ignores), an unchanged re-poll writes nothing."""

    def store(self, event: Event) -> WriteOutcome:
        item = to_item(event)
        try:
            item.save(condition=EventItem.sk.does_not_exist())
            return WriteOutcome.CREATED
        except PutError as exc:
            if not _is_conditional_failure(exc):
                raise
        existing = EventItem.get(item.entity_id, item.sk, attributes_to_get=["content_hash"])
        if existing.content_hash == item.content_hash:
            return WriteOutcome.UNCHANGED
        item.update(
            actions=[
                EventItem.updated_at.set(item.updated_at),
                EventItem.status.set(item.status),
                EventItem.severity_id.set(item.severity_id),
                EventItem.title.set(item.title),
                EventItem.finding.set(item.finding),
                EventItem.raw.set(item.raw),
                EventItem.content_hash.set(item.content_hash),
            ]
        )
        return WriteOutcome.UPDATED

    def timeline(self, entity_id: str, start: datetime, end: datetime, limit: int = 500) -> list[Event]:
        """The entity's events with start <= time <= end, oldest first (one Query)."""
        condition = EventItem.sk.between(iso(start), iso(end) + "~")
        return [from_item(i) for i in EventItem.query(entity_id, range_key_condition=condition, limit=limit)]

    def set_score(
        self, event: Event, score: int, explanation: str, incident_ids: list[str], suppressed: bool = False
    ) -> None:
        # Low-level call: Model.update() asks for ALL_NEW, i.e. the whole item back, per event.
        EventItem._get_connection().update_item(
            event.entity_id,
            event.sort_key,
            actions=[
                EventItem.score.set(score),
                EventItem.suppressed.set(suppressed),
                EventItem.explanation.set(explanation),
                EventItem.incident_ids.set(incident_ids),
            ],
            return_values="NONE",
        )


# Everything but the raw payload and the full finding: timelines are read per event.
TIMELINE_ATTRIBUTES = [
    name for name in EventItem.get_attributes() if name not in ("raw", "finding", "content_hash")
]


def _is_conditional_failure(exc: PutError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def to_item(event: Event) -> EventItem:
    if not event.entity_id:
        raise ValueError("an event needs its entity before it is stored")
    return EventItem(
        event.entity_id,
        event.sort_key,
        uid=event.uid,
        kind=event.kind,
        source=event.source,
        vendor_id=event.vendor_id,
        time=iso(event.time),
        updated_at=iso(event.updated_at),
        title=event.title,
        severity_id=event.severity_id,
        status=event.status,
        tactics=list(event.tactics),
        techniques=list(event.techniques),
        hostname=event.device.hostname,
        device_id=event.device.device_id,
        user=event.user,
        process=event.process,
        console_url=event.console_url,
        finding=event.finding,
        raw=pack_raw(event.raw) if event.raw is not None else None,
        content_hash=event.content_hash(),
        score=event.score,
        explanation=event.explanation,
        incident_ids=list(event.incident_ids),
    )


def from_item(item: EventItem) -> Event:
    kind: Kind = item.kind  # type: ignore[assignment]
    return Event(
        source=item.source,
        vendor_id=item.vendor_id,
        kind=kind,
        time=parse_time(item.time),
        updated_at=parse_time(item.updated_at),
        title=item.title,
        severity_id=int(item.severity_id),
        status=item.status,
        tactics=tuple(item.tactics or ()),
        techniques=tuple(item.techniques or ()),
        device=DeviceHints(source=item.source, device_id=item.device_id, hostname=item.hostname),
        user=item.user,
        process=item.process,
        console_url=item.console_url,
        finding=item.finding if isinstance(item.finding, dict) else {},
        entity_id=item.entity_id,
        score=None if item.score is None else int(item.score),
        explanation=item.explanation,
        incident_ids=tuple(item.incident_ids or ()),
    )


def from_stream_image(image: Mapping[str, Any]) -> Event:
    """An Events stream NEW_IMAGE (DynamoDB JSON) -> Event."""
    item = EventItem.from_raw_data(dict(image))
    return from_item(item)
