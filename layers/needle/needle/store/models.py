"""Models table: per-entity counts and sharded population counters."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist

from needle.scoring.rarity import EntityCounts, PopulationCounts
from needle.store.items import ModelItem

POPULATION_SHARDS = 8
ALL_ENTITIES = "__entities__"


class DynamoModelStore:
    def load(self, entity_id: str) -> EntityCounts:
        try:
            item = ModelItem.get(entity_id, "model")
        except DoesNotExist:
            return EntityCounts()
        return EntityCounts(
            counts={str(k): float(v) for k, v in (item.counts or {}).items()},
            total=float(item.total),
            recent=list(item.recent or []),
        )

    def save(self, entity_id: str, counts: EntityCounts) -> None:
        ModelItem(
            entity_id,
            "model",
            counts=counts.counts,
            recent=counts.recent,
            total=counts.total,
            last_update=datetime.now(UTC).isoformat(),
        ).save()

    def population(self, keys: list[str]) -> PopulationCounts:
        return PopulationCounts(
            entities_with_key={k: self._sum(k) for k in keys},
            entities=self._sum(ALL_ENTITIES),
        )

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None:
        # One shard per entity hash: a popular key's writes spread over 8 items.
        shard = f"shard#{zlib.crc32(entity_id.encode()) % POPULATION_SHARDS}"
        for key in [*fresh_keys, *([ALL_ENTITIES] if new_entity else [])]:
            ModelItem(f"pop#{key}", shard).update(actions=[ModelItem.entities.add(1)])

    def _sum(self, key: str) -> float:
        return float(sum(i.entities or 0 for i in ModelItem.query(f"pop#{key}")))
