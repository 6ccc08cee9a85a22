"""Events table: idempotent writes of normalized events and timeline reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event, Kind, iso, pack_raw, parse_time
from needle.store.items import EventItem


class Stored(NamedTuple):
    """What a page write needs to know of a stored alert."""

    content_hash: str
    material_hash: str | None
    severity_id: int


class DynamoEventStore:
    """Stores each vendor alert once; a changed alert is updated in place, an unchanged re-poll
    writes nothing. An update is a MODIFY, which the ProcessEvents stream filter ignores unless
    it is material (`Event.material_hash` changed, or the severity rose): that write sets
    `rescore`, and the alert is scored, correlated and investigated again.

    A page is stored with one consistent BatchGetItem (what is stored already, by content
    hash) and BatchWriteItem for the new alerts, 25 per request, instead of a conditional put
    per alert. A batch put has no condition, so two writers of one source could race to
    create the same alert (the second put would drop the score the first one got): the
    PollSource handler holds the source's poll lock (needle.store.state.PollLock) while it
    polls, so there is one writer per source.
    """

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        """Store a page of events; one outcome per event, in order."""
        items = [to_item(e) for e in events]
        stored = _stored_versions({(i.entity_id, i.sk) for i in items})
        outcomes: list[WriteOutcome] = []
        created: dict[tuple[str, str], EventItem] = {}
        changed: dict[tuple[str, str], tuple[EventItem, bool]] = {}
        for item in items:
            key = (item.entity_id, item.sk)
            known = stored.get(key)
            stored[key] = Stored(item.content_hash, item.material_hash, int(item.severity_id))
            if known is None:
                outcomes.append(WriteOutcome.CREATED)
                created[key] = item
            elif known.content_hash == item.content_hash:
                outcomes.append(WriteOutcome.UNCHANGED)
            else:
                outcomes.append(WriteOutcome.UPDATED)
                if key in created:
                    # A version of an alert created in this page replaces it before it is written.
                    created[key] = item
                else:
                    # Two versions in one page: material if either step was.
                    material = _material(known, item) or (key in changed and changed[key][1])
                    changed[key] = (item, material)
        if created:
            with EventItem.batch_write() as batch:
                for item in created.values():
                    batch.save(item)
        for item, material in changed.values():
            _update_in_place(item, material)
        return outcomes

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
                EventItem.rescore.set(False),
            ],
            return_values="NONE",
        )


# Everything but the raw payload and the full finding: timelines are read per event.
TIMELINE_ATTRIBUTES = [
    name for name in EventItem.get_attributes() if name not in ("raw", "finding", "content_hash")
]


def _stored_versions(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
    if not keys:
        return {}
    found = EventItem.batch_get(
        sorted(keys),
        consistent_read=True,
        attributes_to_get=["entity_id", "sk", "content_hash", "material_hash", "severity_id"],
    )
    return {(i.entity_id, i.sk): Stored(i.content_hash, i.material_hash, int(i.severity_id)) for i in found}


def _material(known: Stored, item: EventItem) -> bool:
    """The detection says something new, or is rated worse (a lowered severity is not news)."""
    if known.material_hash is None:
        return False  # stored before material hashes: only the content is known to differ
    return known.material_hash != item.material_hash or int(item.severity_id) > known.severity_id


def _update_in_place(item: EventItem, material: bool) -> None:
    item.update(
        actions=[
            EventItem.updated_at.set(item.updated_at),
            EventItem.status.set(item.status),
            EventItem.severity_id.set(item.severity_id),
            EventItem.title.set(item.title),
            EventItem.tactics.set(item.tactics),
            EventItem.techniques.set(item.techniques),
            EventItem.user.set(item.user) if item.user is not None else EventItem.user.remove(),
            EventItem.process.set(item.process) if item.process is not None else EventItem.process.remove(),
            EventItem.finding.set(item.finding),
            EventItem.raw.set(item.raw),
            EventItem.content_hash.set(item.content_hash),
            EventItem.material_hash.set(item.material_hash),
            EventItem.rescore.set(material),
        ]
    )


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
        material_hash=event.material_hash(),
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
