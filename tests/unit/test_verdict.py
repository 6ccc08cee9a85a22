"""needle.investigate.verdict: the stated rule from evidence to escalate / benign / inconclusive."""

from __future__ import annotations

from typing import Any

import pytest

from needle.investigate.verdict import RULE_TEXT, attack_chain, conclude

pytestmark = pytest.mark.unit

TITLE = "LSASS memory dumped with comsvcs.dll MiniDump"


def summary(
    uid: str, *, title: str = TITLE, tactics: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "uid": uid,
        "entity_id": "ent-eng-lt-117",
        "source": "mde",
        "title": title,
        "time": "2025-05-12T14:01:07.331Z",
        "severity": "High",
        "severity_id": 4,
        "score": 50,
        "tactics": tactics if tactics is not None else ["CredentialAccess"],
        **extra,
    }


def state(
    alert: dict[str, Any],
    *,
    timeline: list[dict[str, Any]] | None = None,
    incidents: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "investigation_id": "inv-0f3c",
        "event": alert,
        "timeline": [alert] if timeline is None else timeline,
        "incidents": incidents or [],
        "window_hours": 24.0,
    }


def recurring(n: int) -> list[dict[str, Any]]:
    return [summary(f"mde:old-{i}") for i in range(n)]


def test_escalates_when_a_correlation_incident_includes_the_alert() -> None:
    # GIVEN a low-scored, medium alert that is part of a correlation incident
    alert = summary("mde:a1", severity="Medium", severity_id=3, score=5)
    incident = {"id": "inc-1a2b", "rule": "multi_tactic_24h", "title": "Three or more ATT&CK tactics"}
    # WHEN concluded
    conclusion = conclude(state(alert, timeline=[alert, *recurring(5)], incidents=[incident]))["conclusion"]
    # THEN the incident wins over everything else
    assert conclusion["verdict"] == "escalate"
    assert conclusion["confidence"] == 0.9
    assert conclusion["reasons"] == ["correlation rule multi_tactic_24h fired: Three or more ATT&CK tactics"]


@pytest.mark.parametrize(
    ("severity", "severity_id", "score", "verdict"),
    [
        ("High", 4, 70, "escalate"),
        ("High", 4, 100, "escalate"),
        ("Critical", 5, 88, "escalate"),
        ("High", 4, 69, "inconclusive"),
        ("Medium", 3, 99, "inconclusive"),
    ],
)
def test_escalates_on_high_severity_and_unusual_score(
    severity: str, severity_id: int, score: int, verdict: str
) -> None:
    alert = summary("mde:a1", severity=severity, severity_id=severity_id, score=score)

    conclusion = conclude(state(alert))["conclusion"]

    assert conclusion["verdict"] == verdict
    if verdict == "escalate":
        assert conclusion["confidence"] == 0.7
        assert conclusion["reasons"] == [f"severity {severity} and unusualness score {score} (>= 70)"]


def test_benign_when_a_low_score_alert_recurs_on_the_entity() -> None:
    # GIVEN a low score and three earlier occurrences of the same title (plus the alert itself)
    alert = summary("mde:a1", score=12)
    timeline = [alert, *recurring(3), summary("mde:x", title="Something else")]
    # WHEN concluded
    conclusion = conclude(state(alert, timeline=timeline))["conclusion"]
    # THEN it is benign, and the reason gives the numbers
    assert conclusion["verdict"] == "benign"
    assert conclusion["confidence"] == 0.8
    assert conclusion["reasons"] == ["score 12 (< 25) and 3 earlier occurrences on ent-eng-lt-117"]


@pytest.mark.parametrize(
    ("score", "earlier"),
    [(12, 2), (25, 3), (40, 10)],
)
def test_inconclusive_otherwise(score: int, earlier: int) -> None:
    alert = summary("mde:a1", severity="Medium", severity_id=3, score=score)

    conclusion = conclude(state(alert, timeline=[alert, *recurring(earlier)]))["conclusion"]

    assert conclusion["verdict"] == "inconclusive"
    assert conclusion["confidence"] == 0.5
    assert conclusion["reasons"] == [f"score {score}, severity Medium, no correlation incident"]


def test_the_alert_itself_is_not_a_recurrence() -> None:
    alert = summary("mde:a1", score=3)

    conclusion = conclude(state(alert, timeline=[alert, alert, alert, *recurring(2)]))["conclusion"]

    assert conclusion["verdict"] == "inconclusive"


def test_conclusion_states_its_rule_and_keeps_the_state() -> None:
    before = state(summary("mde:a1"))

    after = conclude(before)

    assert after["conclusion"]["rule"] == RULE_TEXT
    assert {k: v for k, v in after.items() if k != "conclusion"} == before
    assert "conclusion" not in before


def test_attack_chain_is_in_kill_chain_order() -> None:
    # GIVEN a timeline whose tactics arrive out of order, with repeats, ids and non-tactics
    timeline = [
        summary("mde:1", tactics=["Exfiltration"]),
        summary("mde:2", tactics=["LateralMovement", "Malware"]),
        summary("mde:3", tactics=["CommandAndControl"]),
        summary("mde:4", tactics=["Execution"]),
        summary("mde:5", tactics=["TA0006"]),
        summary("mde:6", tactics=["Credential Access"]),
        summary("mde:7", tactics=[]),
    ]
    # WHEN the chain is built
    chain = conclude(state(timeline[0], timeline=timeline))["conclusion"]["attack_chain"]
    # THEN each tactic appears once, in ATT&CK order (command and control before exfiltration)
    assert chain == [
        "TA0002 Execution",
        "TA0006 Credential Access",
        "TA0008 Lateral Movement",
        "TA0011 Command and Control",
        "TA0010 Exfiltration",
    ]


def test_attack_chain_of_an_empty_timeline_is_empty() -> None:
    assert attack_chain([]) == []
