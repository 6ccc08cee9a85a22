"""Models table: per-entity state (counts and recent history) and sharded population counters."""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist

from needle.scoring.rarity import EntityCounts, PopulationCounts
from needle.store.items import ModelItem

POPULATION_SHARDS = 8
ALL_ENTITIES = "__entities__"


class DynamoModelStore:
    """Entity state is read and written per stream batch when `begin_batch`/`end_batch` frame the
    batch (BatchGetItem, then BatchWriteItem of what changed): the stream keeps one entity on one
    shard, in order, so no other writer touches it meanwhile.

    Population counters move slowly (a count stale by a few entities changes no score much), so
    the container keeps its own view: the stored count when it last read the key plus its own
    increments since, re-read after `refresh_after` population lookups. Its increments are
    summed and written at the end of the first batch at least `flush_every` (wall clock) after
    the last write: one UpdateItem per key per interval instead of one per batch. What the
    container scores depends only on what it processed, never on when its writes happened, so a
    replay scores alike on every run. The price: a container reclaimed with increments pending
    loses them (counts run a little low, which scores a key a little rarer); entity state,
    which scoring cannot rebuild, is written every batch."""

    def __init__(
        self,
        refresh_after: int = 1000,
        clock: Any = None,
        flush_every: timedelta = timedelta(seconds=30),
    ) -> None:
        self._refresh_after = refresh_after
        self._flush_every = flush_every
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lookups = 0
        self._population: dict[str, tuple[int, float]] = {}  # key -> (lookup number read at, count)
        self._buffer: dict[str, EntityCounts] | None = None
        self._dirty: set[str] = set()
        # This batch's increments join the pending ones only once its entity state is written:
        # a failed batch is retried, and its increments must not count twice.
        self._increments: Counter[tuple[str, str]] = Counter()
        self._pending: Counter[tuple[str, str]] = Counter()
        self._flushed = self._clock()

    # -- per-batch buffering ------------------------------------------------------------------
    def begin_batch(self, entity_ids: list[str]) -> None:
        unique = sorted(set(entity_ids))
        found = {i.pk: _counts(i) for i in ModelItem.batch_get([(e, "model") for e in unique])}
        self._buffer = {e: found.get(e) or EntityCounts() for e in unique}
        self._dirty.clear()
        self._increments.clear()

    def end_batch(self) -> None:
        """Write what the batch changed; a failure here fails the batch, which is then retried."""
        buffer, self._buffer = self._buffer, None
        if buffer is not None and self._dirty:
            with ModelItem.batch_write() as batch:
                for entity_id in sorted(self._dirty):
                    batch.save(_item(entity_id, buffer[entity_id]))
        self._dirty.clear()
        self._pending.update(self._increments)
        self._increments.clear()
        if self._clock() - self._flushed >= self._flush_every:
            self.flush_population()

    def flush_population(self) -> None:
        """Write the pending population increments now."""
        for key, shard in sorted(self._pending):
            self._add(key, shard, self._pending[(key, shard)])
            del self._pending[(key, shard)]  # one at a time: a failed write keeps the rest pending
        self._flushed = self._clock()

    # -- entity state -------------------------------------------------------------------------
    def load(self, entity_id: str) -> EntityCounts:
        if self._buffer is not None and entity_id in self._buffer:
            return self._buffer[entity_id]
        try:
            return _counts(ModelItem.get(entity_id, "model"))
        except DoesNotExist:
            return EntityCounts()

    def save(self, entity_id: str, counts: EntityCounts) -> None:
        if self._buffer is not None:
            self._buffer[entity_id] = counts
            self._dirty.add(entity_id)
            return
        _item(entity_id, counts).save()

    # -- population ---------------------------------------------------------------------------
    def population(self, keys: list[str]) -> PopulationCounts:
        self._lookups += 1
        return PopulationCounts(
            entities_with_key={k: self._cached(k) for k in keys},
            entities=self._cached(ALL_ENTITIES),
        )

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None:
        # One shard per entity hash: a popular key's writes spread over 8 items.
        shard = _shard_name(zlib.crc32(entity_id.encode()) % POPULATION_SHARDS)
        for key in [*fresh_keys, *([ALL_ENTITIES] if new_entity else [])]:
            hit = self._population.get(key)
            if hit is not None:
                self._population[key] = (hit[0], hit[1] + 1)
            if self._buffer is not None:
                self._increments[(key, shard)] += 1
            else:
                self._add(key, shard, 1)

    def _add(self, key: str, shard: str, count: int) -> None:
        ModelItem._get_connection().update_item(
            f"pop#{key}", shard, actions=[ModelItem.entities.add(count)], return_values="NONE"
        )

    def _cached(self, key: str) -> float:
        hit = self._population.get(key)
        if hit is not None and self._lookups - hit[0] < self._refresh_after:
            return hit[1]
        stored = sum(i.entities or 0 for i in ModelItem.query(f"pop#{key}"))
        shards = [(key, _shard_name(n)) for n in range(POPULATION_SHARDS)]
        unwritten = sum(self._pending[s] + self._increments[s] for s in shards)
        value = float(stored + unwritten)
        self._population[key] = (self._lookups, value)
        return value


def _shard_name(number: int) -> str:
    return f"shard#{number}"


def _counts(item: ModelItem) -> EntityCounts:
    return EntityCounts(
        counts={str(k): float(v) for k, v in (item.counts or {}).items()},
        total=float(item.total),
        recent=list(item.recent or []),
        history=list(item.history or []),
    )


def _item(entity_id: str, counts: EntityCounts) -> ModelItem:
    return ModelItem(
        entity_id,
        "model",
        counts=counts.counts,
        recent=counts.recent,
        history=counts.history,
        total=counts.total,
        last_update=datetime.now(UTC).isoformat(),
    )
