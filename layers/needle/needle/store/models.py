"""Models table: per-entity counts and sharded population counters."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist

from needle.scoring.rarity import EntityCounts, PopulationCounts
from needle.store.items import ModelItem

POPULATION_SHARDS = 8
ALL_ENTITIES = "__entities__"


class DynamoModelStore:
    """Per-entity items are read and written per event (the stream keeps one entity on one
    shard, in order). Population counters are read through a cache that lives with the
    container: they move slowly, and a stale count by a few entities changes no score much."""

    def __init__(self, population_ttl: timedelta = timedelta(seconds=60), clock: Any = None) -> None:
        self._ttl = population_ttl
        self._clock = clock or (lambda: datetime.now(UTC))
        self._population: dict[str, tuple[datetime, float]] = {}

    def load(self, entity_id: str) -> EntityCounts:
        try:
            item = ModelItem.get(entity_id, "model")
        except DoesNotExist:
            return EntityCounts()
        return EntityCounts(
            counts={str(k): float(v) for k, v in (item.counts or {}).items()},
            total=float(item.total),
            recent=list(item.recent or []),
            history=list(item.history or []),
        )

    def save(self, entity_id: str, counts: EntityCounts) -> None:
        ModelItem(
            entity_id,
            "model",
            counts=counts.counts,
            recent=counts.recent,
            history=counts.history,
            total=counts.total,
            last_update=datetime.now(UTC).isoformat(),
        ).save()

    def population(self, keys: list[str]) -> PopulationCounts:
        return PopulationCounts(
            entities_with_key={k: self._cached(k) for k in keys},
            entities=self._cached(ALL_ENTITIES),
        )

    def _cached(self, key: str) -> float:
        now = self._clock()
        hit = self._population.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = self._sum(key)
        self._population[key] = (now, value)
        return value

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None:
        # One shard per entity hash: a popular key's writes spread over 8 items.
        shard = f"shard#{zlib.crc32(entity_id.encode()) % POPULATION_SHARDS}"
        for key in [*fresh_keys, *([ALL_ENTITIES] if new_entity else [])]:
            ModelItem._get_connection().update_item(
                f"pop#{key}", shard, actions=[ModelItem.entities.add(1)], return_values="NONE"
            )
            hit = self._population.get(key)
            if hit is not None:
                self._population[key] = (hit[0], hit[1] + 1)

    def _sum(self, key: str) -> float:
        return float(sum(i.entities or 0 for i in ModelItem.query(f"pop#{key}")))
