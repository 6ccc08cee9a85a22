"""DynamoEventStore.store_page and PollLock on the embedded AWS."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from needle.ingest.ports import WriteOutcome
from needle.model.event import Event
from needle.sources.mde.normalize import normalize
from needle.store.events import DynamoEventStore
from needle.store.state import PollLock
from tests.support import mde_alert, scan

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def event(n: int, status: str = "New") -> Event:
    alert = mde_alert(f"da{n}", AT + timedelta(minutes=n)) | {"status": status}
    return replace(normalize(alert), entity_id="host:fin-ws-042")


def test_a_page_creates_new_events_and_updates_changed_ones_in_place(bound: Any) -> None:
    store = DynamoEventStore()
    # GIVEN 30 stored events (more than one BatchWriteItem request)
    assert store.store_page([event(n) for n in range(30)]) == [WriteOutcome.CREATED] * 30
    # WHEN a page repeats one, changes one, brings a new one, and that new one twice (two versions)
    page = [event(0), event(1, status="Resolved"), event(30), event(30, status="InProgress")]
    outcomes = store.store_page(page)
    # THEN each outcome is right and each alert is stored once, at its latest version
    assert outcomes == [
        WriteOutcome.UNCHANGED,
        WriteOutcome.UPDATED,
        WriteOutcome.CREATED,
        WriteOutcome.UPDATED,
    ]
    items = {i["vendor_id"]["S"]: i for i in scan(bound, "EventsTable")}
    assert len(items) == 31
    assert items["da0"]["status"]["S"] == event(0).status == "new"
    assert items["da1"]["status"]["S"] == event(1, status="Resolved").status == "resolved"
    assert items["da30"]["status"]["S"] == event(30, status="InProgress").status == "in_progress"


def test_an_empty_page_writes_nothing(bound: Any) -> None:
    assert DynamoEventStore().store_page([]) == []
    assert scan(bound, "EventsTable") == []


def test_the_poll_lock_admits_one_holder_until_it_is_released_or_lapses(bound: Any) -> None:
    now = [AT]
    lock = PollLock(clock=lambda: now[0])
    assert lock.hold("mde", "run-1", seconds=130)
    assert not lock.hold("mde", "run-2", seconds=130)  # the previous poll is still running
    assert lock.hold("crowdstrike", "run-2", seconds=130)  # locks are per source
    lock.release("mde", "run-1")
    assert lock.hold("mde", "run-2", seconds=130)
    # A holder that died keeps its source only until the lock lapses
    now[0] += timedelta(seconds=131)
    assert lock.hold("mde", "run-3", seconds=130)
    lock.release("mde", "run-2")  # the lapsed holder's release leaves run-3's lock alone
    assert not lock.hold("mde", "run-4", seconds=130)
