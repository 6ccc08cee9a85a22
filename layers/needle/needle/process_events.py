"""What happens to each new timeline event: score it, correlate it, investigate it.

Called by the ProcessEvents handler for every INSERT on the Events stream, and for every MODIFY
the store marks as a material vendor update (`revised`). All I/O goes through the ports below,
so this module is the domain path measured by the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from needle.model.event import Event, iso
from needle.rules.engine import Match, Rule, evaluate
from needle.rules.history import recall, remember
from needle.scoring.rarity import EntityCounts, PopulationCounts, Scored, context_keys, learn, score, unlearn


class ScoreSink(Protocol):
    def set_score(
        self, event: Event, score: int, explanation: str, incident_ids: list[str], suppressed: bool = False
    ) -> None: ...


class ModelStore(Protocol):
    def load(self, entity_id: str) -> EntityCounts: ...

    def save(self, entity_id: str, counts: EntityCounts) -> None: ...

    def population(self, keys: list[str]) -> PopulationCounts: ...

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None: ...


class Incidents(Protocol):
    def open_or_merge(self, match: Match) -> dict[str, Any]: ...


class InvestigationStarter(Protocol):
    def start(self, event: Event, name: str | None = None) -> str: ...


# When an investigation starts: the product promise is every EDR alert; a team (or a replay of
# 50,000 alerts on a laptop) may investigate only alerts that open an incident, or none.
TRIGGERS = ("every-edr-alert", "incidents", "none")


@dataclass(frozen=True)
class Outcome:
    event: Event
    scored: Scored
    incident_ids: tuple[str, ...]
    investigation: str | None
    revised: bool = False


@dataclass
class EventProcessor:
    events: ScoreSink
    models: ModelStore
    incidents: Incidents
    investigations: InvestigationStarter
    rules: list[Rule]
    trigger: str = "every-edr-alert"

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"investigation trigger {self.trigger!r} is not one of {TRIGGERS}")

    def process(self, event: Event, revised: bool = False) -> Outcome:
        """Score, correlate and investigate `event`; `revised`: a material update of a stored alert.

        A revision is scored like a retry (its uid is already counted, so it is taken out and put
        back with what it now says) and investigated under a name that includes its material
        hash, so it gets its own investigation once, however often the batch is retried.
        """
        state = self.models.load(event.entity_id)
        scored = self._score(event, state)
        if revised:
            scored = replace(
                scored, explanation=f"{scored.explanation}; re-scored: the vendor changed the alert"
            )
        # Rules see the event's score: a rule may count only what is unusual for the entity.
        done = replace(event, score=scored.score, explanation=scored.explanation)
        history = recall(state.history, event.entity_id, exclude=event)
        incidents = [self.incidents.open_or_merge(m) for m in self._correlate(done, history)]
        incident_ids = tuple(i["id"] for i in incidents)
        done = replace(done, incident_ids=incident_ids)
        state.history = remember(state.history, done, self._span)
        self.models.save(event.entity_id, state)
        self.events.set_score(event, scored.score, scored.explanation, list(incident_ids), scored.suppressed)
        investigation = None
        if self.trigger == "every-edr-alert" and event.kind == "edr_alert":
            investigation = self.investigations.start(done)
        elif self.trigger == "incidents":
            # The alert that opens an incident is investigated once, named after the incident.
            for incident in incidents:
                if incident.get("matches") == 1:
                    investigation = self.investigations.start(done, name=f"inv-{incident['id']}")
        return Outcome(done, scored, incident_ids, investigation, revised)

    @property
    def _span(self) -> timedelta:
        return max((r.timespan for r in self.rules), default=timedelta(hours=24))

    def _score(self, event: Event, state: EntityCounts) -> Scored:
        if event.uid in state.recent:
            # A retried batch: this event is already counted. Take it out to score it as it was
            # first scored, then count it again; the population is not touched twice.
            unlearn(event, state)
            scored = score(event, state, self.models.population(context_keys(event)))
            learn(event, state)
            return scored
        scored = score(event, state, self.models.population(context_keys(event)))
        new_entity = state.total == 0
        fresh = learn(event, state)
        self.models.add_to_population(event.entity_id, fresh, new_entity)
        return scored

    def _correlate(self, event: Event, history: list[Event]) -> list[Match]:
        return [m for m in (evaluate(rule, event, history) for rule in self.rules) if m is not None]


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
