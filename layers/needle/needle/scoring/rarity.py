"""First-seen/rarity score: how unusual is this alert for this entity, given the population?

For each context key k of an event (alert title; title + process; tactic), with c = times the
entity showed k, C = the entity's alerts, n = entities that showed k, N = entities:

    p_pop = (n + 0.5) / (N + 1)            population prior, never 0
    p     = (c + a * p_pop) / (C + a)      smoothed probability of k on this entity
    score = round(100 * (1 - p)) of the least probable key

A key never seen on the entity and rare in the population scores near 100; an alert that
keeps recurring on the entity decays toward 0. The explanation carries the numbers so a
person can check them. (The decayed, calibrated model replaces this in its own issue.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from needle.model.event import Event

PRIOR_WEIGHT = 2.0
WARM_UP_ALERTS = 3
SUPPRESS_BELOW = 25


@dataclass
class EntityCounts:
    counts: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    recent: list[str] = field(default_factory=list)
    # The entity's recent events for correlation (needle.rules.history), stored in the same item.
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PopulationCounts:
    entities_with_key: dict[str, float]
    entities: float


@dataclass(frozen=True)
class Scored:
    score: int
    explanation: str
    suppressed: bool
    key: str


_KEY_LABELS = {"title": "alert", "title+process": "alert with this process", "tactic": "tactic"}


def context_keys(event: Event) -> list[str]:
    """Context keys from general to specific; each is scored, the rarest explains."""
    keys = [f"title|{event.source}|{event.title}"]
    if event.process:
        keys.append(f"title+process|{event.source}|{event.title}|{event.process.lower()}")
    keys.extend(f"tactic|{t}" for t in event.tactics)
    return keys


def score(event: Event, entity: EntityCounts, population: PopulationCounts) -> Scored:
    """Score `event` against counts that do not yet include it."""
    best: tuple[float, str, float, float] | None = None
    for key in context_keys(event):
        c = entity.counts.get(key, 0.0)
        n = population.entities_with_key.get(key, 0.0)
        p_pop = (n + 0.5) / (population.entities + 1.0)
        p = (c + PRIOR_WEIGHT * p_pop) / (entity.total + PRIOR_WEIGHT)
        if best is None or p < best[0]:
            best = (p, key, c, n)
    assert best is not None  # context_keys always yields the title key
    p, key, c, n = best
    value = max(0, min(100, round(100 * (1 - p))))
    where = event.entity_id or "this entity"
    what = _KEY_LABELS[key.split("|", 1)[0]]
    if c == 0:
        seen = f"first time this {what} is seen on {where}"
    else:
        seen = f"this {what} was seen {c:g} times in {entity.total:g} alerts on {where}"
    population_note = f"seen on {n:g} of {population.entities:g} entities"
    warm = (
        f"; warm-up: only {entity.total:g} alerts known for {where}" if entity.total < WARM_UP_ALERTS else ""
    )
    suppressed = value < SUPPRESS_BELOW and entity.total >= WARM_UP_ALERTS
    tail = "; recurring on this entity, suppressed" if suppressed else ""
    explanation = f"score {value}: {seen}; {population_note}{warm}{tail}"
    return Scored(score=value, explanation=explanation, suppressed=suppressed, key=key)


def learn(event: Event, entity: EntityCounts, recent_limit: int = 50) -> list[str]:
    """Add the event to the entity's counts; returns the keys the entity shows for the first time."""
    fresh = []
    for key in context_keys(event):
        if entity.counts.get(key, 0.0) == 0.0:
            fresh.append(key)
        entity.counts[key] = entity.counts.get(key, 0.0) + 1.0
    entity.total += 1.0
    entity.recent = [*entity.recent, event.uid][-recent_limit:] if recent_limit > 0 else []
    return fresh


def unlearn(event: Event, entity: EntityCounts) -> None:
    """Take an already-counted event back out, so a retried batch scores it as the first time."""
    for key in context_keys(event):
        entity.counts[key] = max(0.0, entity.counts.get(key, 0.0) - 1.0)
    entity.total = max(0.0, entity.total - 1.0)
    entity.recent = [u for u in entity.recent if u != event.uid]
