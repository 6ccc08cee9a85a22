"""What happens to each new timeline event: score it, correlate it, investigate it.

Called by the ProcessEvents handler for every INSERT on the Events stream. All I/O goes
through the ports below, so this module is the domain path measured by the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from needle.model.event import Event, iso
from needle.rules.engine import Match, Rule, evaluate
from needle.scoring.rarity import EntityCounts, PopulationCounts, Scored, context_keys, learn, score, unlearn


class Timeline(Protocol):
    def timeline(self, entity_id: str, start: datetime, end: datetime, limit: int = 500) -> list[Event]: ...

    def set_score(self, event: Event, score: int, explanation: str, incident_ids: list[str]) -> None: ...


class ModelStore(Protocol):
    def load(self, entity_id: str) -> EntityCounts: ...

    def save(self, entity_id: str, counts: EntityCounts) -> None: ...

    def population(self, keys: list[str]) -> PopulationCounts: ...

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None: ...


class Incidents(Protocol):
    def open_or_merge(self, match: Match) -> dict[str, Any]: ...


class InvestigationStarter(Protocol):
    def start(self, event: Event) -> str: ...


@dataclass(frozen=True)
class Outcome:
    event: Event
    scored: Scored
    incident_ids: tuple[str, ...]
    investigation: str | None


@dataclass
class EventProcessor:
    events: Timeline
    models: ModelStore
    incidents: Incidents
    investigations: InvestigationStarter
    rules: list[Rule]
    investigate_kinds: tuple[str, ...] = ("edr_alert",)

    def process(self, event: Event) -> Outcome:
        scored = self._score(event)
        matches = self._correlate(event)
        incident_ids = tuple(self.incidents.open_or_merge(m)["id"] for m in matches)
        self.events.set_score(event, scored.score, scored.explanation, list(incident_ids))
        done = replace(event, score=scored.score, explanation=scored.explanation, incident_ids=incident_ids)
        investigation = self.investigations.start(done) if event.kind in self.investigate_kinds else None
        return Outcome(event=done, scored=scored, incident_ids=incident_ids, investigation=investigation)

    def _score(self, event: Event) -> Scored:
        counts = self.models.load(event.entity_id)
        if event.uid in counts.recent:
            # A retried batch: this event is already counted. Take it out to score it as it was
            # first scored, then count it again; the population is not touched twice.
            unlearn(event, counts)
            population = self.models.population(context_keys(event))
            scored = score(event, counts, population)
            learn(event, counts)
            return scored
        population = self.models.population(context_keys(event))
        scored = score(event, counts, population)
        new_entity = counts.total == 0
        fresh = learn(event, counts)
        self.models.save(event.entity_id, counts)
        self.models.add_to_population(event.entity_id, fresh, new_entity)
        return scored

    def _correlate(self, event: Event) -> list[Match]:
        if not self.rules:
            return []
        span = max(r.timespan for r in self.rules)
        history = self.events.timeline(event.entity_id, event.time - span, event.time + timedelta(seconds=1))
        found = [m for m in (evaluate(rule, event, history) for rule in self.rules) if m is not None]
        return found


def summary(event: Event) -> dict[str, Any]:
    """The compact, payload-free view of an event that travels in Step Functions state."""
    return {
        "uid": event.uid,
        "entity_id": event.entity_id,
        "sk": event.sort_key,
        "source": event.source,
        "vendor_id": event.vendor_id,
        "kind": event.kind,
        "time": iso(event.time),
        "title": event.title,
        "severity": event.severity,
        "severity_id": event.severity_id,
        "status": event.status,
        "tactics": list(event.tactics),
        "techniques": list(event.techniques),
        "user": event.user,
        "process": event.process,
        "console_url": event.console_url,
        "score": event.score,
        "explanation": event.explanation,
        "incident_ids": list(event.incident_ids),
    }
