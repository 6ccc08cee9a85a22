"""DynamoModelStore on the embedded AWS: entity state per batch, population increments pending
until their batch is written, then flushed on an interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from needle.store.items import ModelItem
from needle.store.models import DynamoModelStore
from tests.support import bind_stack_tables

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(aws: Any) -> tuple[DynamoModelStore, Clock]:
    bind_stack_tables(aws)
    clock = Clock()
    return DynamoModelStore(clock=clock, flush_every=timedelta(seconds=30)), clock


def stored_population(key: str) -> float:
    return float(sum(i.entities or 0 for i in ModelItem.query(f"pop#{key}")))


def test_population_increments_wait_for_the_interval_then_are_written_once(
    store: tuple[DynamoModelStore, Clock],
) -> None:
    models, clock = store
    # GIVEN two batches within the flush interval, each adding one entity to a key
    for entity in ("host:a", "host:b"):
        models.begin_batch([entity])
        models.add_to_population(entity, ["title|mde|Mimikatz"], new_entity=True)
        models.end_batch()
    assert stored_population("title|mde|Mimikatz") == 0  # still pending
    # WHEN a later batch ends after the interval
    clock.now += timedelta(seconds=31)
    models.begin_batch(["host:c"])
    models.end_batch()
    # THEN both increments are written, and nothing is written twice
    assert stored_population("title|mde|Mimikatz") == 2
    assert stored_population("__entities__") == 2
    models.flush_population()
    assert stored_population("title|mde|Mimikatz") == 2


def test_a_failed_batch_adds_nothing_and_its_retry_counts_once(store: tuple[DynamoModelStore, Clock]) -> None:
    models, _ = store
    # GIVEN a batch that fails before end_batch (Lambda retries it)
    models.begin_batch(["host:a"])
    models.add_to_population("host:a", ["tactic|TA0006"], new_entity=True)
    # WHEN the retry runs the batch again and succeeds
    models.begin_batch(["host:a"])
    models.add_to_population("host:a", ["tactic|TA0006"], new_entity=True)
    models.end_batch()
    models.flush_population()
    # THEN the entity is counted once
    assert stored_population("tactic|TA0006") == 1


def test_the_containers_view_counts_its_own_unwritten_increments(
    store: tuple[DynamoModelStore, Clock],
) -> None:
    models, _ = store
    # GIVEN an increment still pending (not flushed) for a key never read before
    models.begin_batch(["host:a"])
    models.add_to_population("host:a", ["title|mde|Mimikatz"], new_entity=True)
    models.end_batch()
    assert stored_population("title|mde|Mimikatz") == 0
    # WHEN the key is looked up THEN the container sees its own increment all the same
    assert models.population(["title|mde|Mimikatz"]).entities_with_key["title|mde|Mimikatz"] == 1


def test_a_count_is_re_read_after_refresh_after_lookups(aws: object) -> None:
    bind_stack_tables(aws)
    reader, writer = DynamoModelStore(refresh_after=3), DynamoModelStore()
    key = "tactic|TA0008"
    assert reader.population([key]).entities_with_key[key] == 0
    # another container adds an entity and flushes
    writer.add_to_population("host:b", [key], new_entity=False)
    for lookups in (2, 3):
        assert reader.population([key]).entities_with_key[key] == 0, lookups  # still its cached view
    assert reader.population([key]).entities_with_key[key] == 1  # the fourth lookup re-reads
