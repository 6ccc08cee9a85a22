"""needle.process_events: a new alert and a materially revised one, with in-memory ports."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from needle.investigate.starter import investigation_id
from needle.model.event import DeviceHints, Event
from needle.process_events import EventProcessor
from needle.rules.engine import Match
from needle.scoring.rarity import EntityCounts, PopulationCounts

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Memory:
    """Every port of EventProcessor, in memory."""

    def __init__(self) -> None:
        self.models: dict[str, EntityCounts] = {}
        self.scores: dict[str, tuple[int, str]] = {}
        self.investigations: list[str] = []

    def load(self, entity_id: str) -> EntityCounts:
        return copy.deepcopy(self.models.get(entity_id, EntityCounts()))

    def save(self, entity_id: str, counts: EntityCounts) -> None:
        self.models[entity_id] = copy.deepcopy(counts)

    def population(self, keys: list[str]) -> PopulationCounts:
        return PopulationCounts({k: 0.0 for k in keys}, 10.0)

    def add_to_population(self, entity_id: str, fresh_keys: list[str], new_entity: bool) -> None:
        pass

    def set_score(
        self, event: Event, score: int, explanation: str, incident_ids: list[str], suppressed: bool = False
    ) -> None:
        self.scores[event.uid] = (score, explanation)

    def open_or_merge(self, match: Match) -> dict[str, Any]:
        raise AssertionError("no rules, no incidents")

    def start(self, event: Event, name: str | None = None) -> str:
        name = name or investigation_id(event)
        if name not in self.investigations:  # Step Functions refuses a second execution by name
            self.investigations.append(name)
        return name


def alert(techniques: tuple[str, ...], status: str = "new") -> Event:
    attacks = [{"technique": {"uid": t}} for t in techniques]
    return Event(
        source="mde",
        vendor_id="da1",
        kind="edr_alert",
        time=AT,
        updated_at=AT,
        title="Suspicious PowerShell",
        severity_id=3,
        status=status,
        tactics=("Execution",) + (("LateralMovement",) if "T1021" in techniques else ()),
        techniques=techniques,
        device=DeviceHints("mde", "d1", "fin-ws-042"),
        user=None,
        process="powershell.exe",
        console_url=None,
        finding={"status": status, "finding_info": {"uid": "da1", "attacks": attacks}},
        entity_id="host:fin-ws-042",
    )


def processor(memory: Memory) -> EventProcessor:
    return EventProcessor(memory, memory, memory, memory, rules=[], trigger="every-edr-alert")


def test_a_material_revision_is_rescored_and_investigated_again_but_counted_once() -> None:
    memory = Memory()
    core = processor(memory)
    # GIVEN an alert scored and investigated once
    first = core.process(alert(("T1059.001",)))
    # WHEN the vendor adds lateral movement to it, and the batch with that revision is retried
    revised = alert(("T1059.001", "T1021"))
    again = core.process(revised, revised=True)
    retried = core.process(revised, revised=True)
    # THEN the revision gets its own investigation, once
    assert memory.investigations == [first.investigation, again.investigation]
    assert retried.investigation == again.investigation != first.investigation
    # AND the score says why it moved, while the entity counts the alert once, as it now reads
    assert again.revised
    assert memory.scores["mde:da1"][1].endswith("re-scored: the vendor changed the alert")
    state = memory.models["host:fin-ws-042"]
    assert state.total == 1.0
    assert state.counts["tactic|LateralMovement"] == 1.0
    assert state.counts["title|mde|Suspicious PowerShell"] == 1.0


def test_the_investigation_name_ignores_workflow_changes() -> None:
    new = alert(("T1059.001",))
    resolved = replace(new, status="resolved", finding={**new.finding, "status": "resolved"})
    assert investigation_id(new) == investigation_id(resolved)
