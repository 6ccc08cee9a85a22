"""Incidents table: correlation incidents (merged by id) and finished investigations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from needle.model.event import iso
from needle.rules.engine import Match
from needle.store.items import IncidentItem


class DynamoIncidentStore:
    """A new incident is written at once: its investigation may start reading it right away.
    Within a stream batch (`begin_batch` .. `end_batch`) later merges are kept and written once
    at the end, one BatchWriteItem for the batch: a noisy entity's matches merge into one
    incident many times per batch, and only this batch's shard writes that entity's incidents
    meanwhile. A batch that fails before `end_batch` is retried whole, and its merges are made
    again (a merge already stored is recognised by its event uids). Another container may have
    merged since, so nothing is kept past the batch."""

    def __init__(self) -> None:
        self._batch: dict[str, IncidentItem] | None = None
        self._unsaved: set[str] = set()

    def begin_batch(self) -> None:
        self._batch = {}
        self._unsaved.clear()

    def end_batch(self) -> None:
        """Write the merges of the batch; a failure here fails the batch, which is then retried."""
        batch, self._batch = self._batch, None
        if batch is not None and self._unsaved:
            with IncidentItem.batch_write() as writer:
                for incident_id in sorted(self._unsaved):
                    writer.save(batch[incident_id])
        self._unsaved.clear()

    def open_or_merge(self, match: Match) -> dict[str, Any]:
        """Create the incident, or add the new events to the one already open for this window."""
        uids = [e.uid for e in match.events]
        batch = self._batch if self._batch is not None else {}
        try:
            item = batch.get(match.incident_id) or IncidentItem.get(f"incident#{match.incident_id}")
            body = dict(item.body)
            known = set(body.get("event_uids", []))
            if known >= set(uids):
                return body  # a retried batch: this match is already merged
            body["event_uids"] = sorted(known | set(uids))
            body["values"] = sorted(set(body.get("values", [])) | set(match.values))
            body["last_seen"] = max(body.get("last_seen", ""), iso(match.events[-1].time))
            body["matches"] = int(body.get("matches", 1)) + 1
            item.body = body
            if self._batch is None:
                item.save()
            else:
                self._batch[match.incident_id] = item
                self._unsaved.add(match.incident_id)
            return body
        except DoesNotExist:
            pass
        body = {
            "id": match.incident_id,
            "rule": match.rule.id,
            "title": match.rule.title,
            "severity": match.rule.severity,
            "entity_id": match.entity_id,
            "event_uids": sorted(set(uids)),
            "values": list(match.values),
            "first_seen": iso(match.events[0].time),
            "last_seen": iso(match.events[-1].time),
            "attack": list(match.rule.attack),
            "runbook": match.rule.runbook,
            "matches": 1,
        }
        item = IncidentItem(
            f"incident#{match.incident_id}",
            status="open",
            opened_at=datetime.now(UTC).isoformat(),
            body=body,
        )
        item.save()
        if self._batch is not None:
            self._batch[match.incident_id] = item
        return body

    def get(self, incident_id: str) -> dict[str, Any] | None:
        try:
            return dict(IncidentItem.get(f"incident#{incident_id}").body)
        except DoesNotExist:
            return None

    def record_investigation(self, investigation_id: str, body: dict[str, Any]) -> None:
        IncidentItem(
            f"investigation#{investigation_id}",
            status=f"investigation:{body.get('verdict', 'unknown')}",
            opened_at=datetime.now(UTC).isoformat(),
            body=body,
        ).save()
