"""needle.scoring.rarity: first-seen alerts score high, recurring ones decay and are suppressed."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from needle.model.event import DeviceHints, Event
from needle.scoring.rarity import (
    SUPPRESS_BELOW,
    WARM_UP_ALERTS,
    EntityCounts,
    PopulationCounts,
    context_keys,
    learn,
    score,
    unlearn,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 12, 14, 0, tzinfo=UTC)
TITLE = "LSASS memory dumped with comsvcs.dll MiniDump"


def alert(
    n: int = 1, entity_id: str = "ent-a", *, title: str = TITLE, process: str | None = "rundll32.exe"
) -> Event:
    return Event(
        source="mde",
        vendor_id=f"da63877_{n}",
        kind="edr_alert",
        time=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
        title=title,
        severity_id=4,
        status="new",
        tactics=("CredentialAccess",),
        techniques=("T1003.001",),
        device=DeviceHints(source="mde", device_id=None, hostname=entity_id),
        user=None,
        process=process,
        console_url=None,
        finding={},
        entity_id=entity_id,
    )


def population(event: Event, entities_with_key: float, entities: float) -> PopulationCounts:
    return PopulationCounts({k: entities_with_key for k in context_keys(event)}, entities)


def test_context_keys_go_from_general_to_specific() -> None:
    assert context_keys(alert(process="RunDLL32.EXE")) == [
        f"title|mde|{TITLE}",
        f"title+process|mde|{TITLE}|rundll32.exe",
        "tactic|CredentialAccess",
    ]
    assert context_keys(alert(process=None)) == [f"title|mde|{TITLE}", "tactic|CredentialAccess"]


def test_first_seen_alert_on_a_new_entity_scores_high() -> None:
    # GIVEN an entity with no history and a population that never saw the alert
    event = alert()
    # WHEN it is scored
    scored = score(event, EntityCounts(), population(event, 0, 200))
    # THEN it is near 100, explained as a first sighting, and not suppressed
    assert scored.score >= 95
    assert not scored.suppressed
    assert "first time" in scored.explanation
    assert "ent-a" in scored.explanation
    assert "seen on 0 of 200 entities" in scored.explanation
    assert "warm-up: only 0 alerts known for ent-a" in scored.explanation


def test_recurring_alert_decays_and_is_suppressed_only_after_warm_up() -> None:
    # GIVEN one entity that keeps raising the same alert (the population knows it only there)
    counts = EntityCounts()
    pop = population(alert(), 1, 50)
    results = []
    # WHEN each occurrence is scored against the history before it, then learned
    for n in range(1, 13):
        event = alert(n)
        results.append((counts.total, score(event, counts, pop)))
        learn(event, counts)
    scores = [s.score for _, s in results]
    # THEN the score only goes down, and ends below the suppression threshold
    assert scores == sorted(scores, reverse=True)
    assert scores[0] >= 90
    assert scores[-1] < SUPPRESS_BELOW
    # AND suppression happens exactly when the score is low and the entity is warmed up
    for total, s in results:
        assert s.suppressed == (s.score < SUPPRESS_BELOW and total >= WARM_UP_ALERTS)
    assert results[-1][1].suppressed
    assert results[-1][1].explanation.endswith("recurring on this entity, suppressed")


def test_warm_up_protects_a_young_entity_from_suppression() -> None:
    # GIVEN an entity with only two alerts, both this one, in a population where everybody has it
    event = alert(3)
    counts = EntityCounts()
    learn(alert(1), counts)
    learn(alert(2), counts)
    # WHEN scored
    scored = score(event, counts, population(event, 1, 1))
    # THEN the score is low but the alert is not suppressed yet
    assert scored.score < SUPPRESS_BELOW
    assert counts.total < WARM_UP_ALERTS
    assert not scored.suppressed
    assert "warm-up" in scored.explanation


def test_the_same_alert_on_another_entity_scores_high_again() -> None:
    # GIVEN entity A has seen the alert so often it is suppressed there
    busy = EntityCounts()
    for n in range(1, 11):
        learn(alert(n), busy)
    pop = population(alert(), 1, 50)
    assert score(alert(11), busy, pop).suppressed
    # WHEN entity B (fresh counts) shows it for the first time
    scored = score(alert(12, "ent-b"), EntityCounts(), pop)
    # THEN it is unusual again
    assert scored.score >= 90
    assert not scored.suppressed
    assert "first time this alert is seen on ent-b" in scored.explanation


def test_explanation_carries_the_counts() -> None:
    counts = EntityCounts()
    for n in range(1, 5):
        learn(alert(n), counts)

    scored = score(alert(5), counts, population(alert(), 3, 40))

    assert scored.explanation.startswith(f"score {scored.score}: ")
    assert "was seen 4 times in 4 alerts on ent-a" in scored.explanation
    assert "seen on 3 of 40 entities" in scored.explanation
    assert "warm-up" not in scored.explanation


def test_the_rarest_context_explains_the_score() -> None:
    # GIVEN a title common on this entity, but never with this process
    counts = EntityCounts()
    for n in range(1, 6):
        learn(alert(n, process="svchost.exe"), counts)
    event = alert(6, process="rundll32.exe")
    pop = PopulationCounts({k: 30.0 for k in context_keys(event)} | {context_keys(event)[1]: 0.0}, 40)
    # WHEN scored
    scored = score(event, counts, pop)
    # THEN the process-specific key is the one that explains it
    assert scored.key == context_keys(event)[1]
    assert "first time this alert with this process is seen" in scored.explanation
    assert scored.score >= 90


def test_learn_reports_fresh_keys_only_once() -> None:
    counts = EntityCounts()

    assert learn(alert(1), counts) == context_keys(alert(1))
    assert learn(alert(2), counts) == []
    assert counts.total == 2
    assert counts.recent == ["mde:da63877_1", "mde:da63877_2"]


def test_learn_keeps_the_most_recent_uids() -> None:
    counts = EntityCounts()

    for n in range(1, 8):
        learn(alert(n), counts, recent_limit=3)

    assert counts.recent == ["mde:da63877_5", "mde:da63877_6", "mde:da63877_7"]


def test_unlearn_is_the_inverse_of_learn() -> None:
    # GIVEN an entity with some history
    counts = EntityCounts()
    learn(alert(1), counts)
    learn(alert(2, title="Suspicious PowerShell download cradle", process="powershell.exe"), counts)
    before = copy.deepcopy(counts)
    event = alert(3)
    pop = population(event, 2, 30)
    first = score(event, counts, pop)
    # WHEN an event is learned and then unlearned
    learn(event, counts)
    unlearn(event, counts)
    # THEN the counts are as before and the event scores exactly as it did the first time
    assert {k: v for k, v in counts.counts.items() if v} == before.counts
    assert counts.total == before.total
    assert counts.recent == before.recent
    assert score(event, counts, pop) == first


def test_unlearn_on_empty_counts_never_goes_negative() -> None:
    counts = EntityCounts()

    unlearn(alert(), counts)

    assert counts.total == 0
    assert all(v == 0 for v in counts.counts.values())


def test_learn_with_a_recent_limit_of_one_keeps_one_uid() -> None:
    counts = EntityCounts()

    for n in range(1, 4):
        learn(alert(n), counts, recent_limit=1)
        # the newest uid only, after every event, not just at the end
        assert counts.recent == [f"mde:da63877_{n}"]


def test_learn_with_a_recent_limit_of_zero_keeps_no_uids() -> None:
    counts = EntityCounts()

    for n in range(1, 4):
        learn(alert(n), counts, recent_limit=0)

    assert counts.recent == []


def test_score_does_not_change_the_counts() -> None:
    counts = EntityCounts()
    learn(alert(1), counts)
    before = copy.deepcopy(counts)

    score(replace(alert(2), tactics=("Execution",)), counts, population(alert(), 1, 10))

    assert counts == before
