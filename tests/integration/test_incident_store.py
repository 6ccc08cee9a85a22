"""DynamoIncidentStore on the embedded AWS: a new incident is written at once, merges within a
stream batch are written once at its end, and a retried merge changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from needle.model.event import DeviceHints, Event
from needle.rules.engine import Match, load_rules
from needle.store.incidents import DynamoIncidentStore
from tests.support import bind_stack_tables

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULE = load_rules()[0]


def alert(n: int) -> Event:
    return Event(
        source="mde",
        vendor_id=f"da{n}",
        kind="edr_alert",
        time=BASE + timedelta(minutes=n),
        updated_at=BASE + timedelta(minutes=n),
        title=f"alert {n}",
        severity_id=3,
        status="new",
        tactics=(),
        techniques=(),
        device=DeviceHints(source="mde", device_id=None, hostname="fin-ws-042"),
        user=None,
        process=None,
        console_url=None,
        finding={},
        entity_id="host:fin-ws-042",
    )


def match(*numbers: int) -> Match:
    events = tuple(alert(n) for n in numbers)
    return Match(RULE, "inc-1", "host:fin-ws-042", events, tuple(e.title for e in events))


@pytest.fixture
def incidents(aws: Any) -> DynamoIncidentStore:
    bind_stack_tables(aws)
    return DynamoIncidentStore()


def test_merges_in_a_batch_are_written_at_its_end_and_a_new_incident_at_once(
    incidents: DynamoIncidentStore,
) -> None:
    reader = DynamoIncidentStore()
    incidents.begin_batch()
    # WHEN a batch opens an incident and merges two more matches into it
    opened = incidents.open_or_merge(match(1, 2))
    stored = reader.get("inc-1")
    incidents.open_or_merge(match(2, 3))
    merged = incidents.open_or_merge(match(3, 4))
    # THEN the new incident was readable at once (an investigation may start on it) ...
    assert opened["matches"] == 1
    assert stored is not None
    assert stored["event_uids"] == ["mde:da1", "mde:da2"]
    # ... the merges are not written until the batch ends, then all at once
    assert merged["matches"] == 3
    assert reader.get("inc-1") == stored
    incidents.end_batch()
    assert reader.get("inc-1") == merged
    assert merged["event_uids"] == ["mde:da1", "mde:da2", "mde:da3", "mde:da4"]


def test_a_retried_merge_changes_nothing_and_outside_a_batch_merges_write_through(
    incidents: DynamoIncidentStore,
) -> None:
    incidents.open_or_merge(match(1, 2))
    once = incidents.open_or_merge(match(2, 3))
    assert DynamoIncidentStore().get("inc-1") == once  # no batch: written through
    # WHEN a retried stream batch merges the same match again
    incidents.begin_batch()
    again = incidents.open_or_merge(match(2, 3))
    incidents.end_batch()
    assert again == once
    assert DynamoIncidentStore().get("inc-1") == once
    assert once["matches"] == 2
