"""Conclude: a stated, checkable rule from the gathered evidence to a verdict.

escalate      a correlation incident includes the alert, or severity >= High and score >= 70
benign        score < 25 and the same alert recurred >= 3 times on the entity in the window
inconclusive  otherwise
"""

from __future__ import annotations

from typing import Any

from needle.model.attack import tactic, tactic_order

RULE_TEXT = (
    "escalate if a correlation incident includes the alert, or if severity >= High and score >= 70; "
    "benign if score < 25 and the same alert recurred >= 3 times on the entity in the window; "
    "otherwise inconclusive"
)


def conclude(state: dict[str, Any]) -> dict[str, Any]:
    alert = state["event"]
    score = alert.get("score") or 0
    incidents = state.get("incidents", [])
    recurrences = sum(
        1 for e in state.get("timeline", []) if e["title"] == alert["title"] and e["uid"] != alert["uid"]
    )
    reasons: list[str] = []
    if incidents:
        verdict, confidence = "escalate", 0.9
        reasons += [f"correlation rule {i['rule']} fired: {i['title']}" for i in incidents]
    elif alert["severity_id"] >= 4 and score >= 70:
        verdict, confidence = "escalate", 0.7
        reasons.append(f"severity {alert['severity']} and unusualness score {score} (>= 70)")
    elif score < 25 and recurrences >= 3:
        verdict, confidence = "benign", 0.8
        reasons.append(f"score {score} (< 25) and {recurrences} earlier occurrences on {alert['entity_id']}")
    else:
        verdict, confidence = "inconclusive", 0.5
        reasons.append(f"score {score}, severity {alert['severity']}, no correlation incident")
    return {
        **state,
        "conclusion": {
            "verdict": verdict,
            "confidence": confidence,
            "rule": RULE_TEXT,
            "reasons": reasons,
            "attack_chain": attack_chain(state.get("timeline", [])),
        },
    }


def attack_chain(timeline: list[dict[str, Any]]) -> list[str]:
    """Tactics seen on the entity, in ATT&CK kill-chain order."""
    found = {t for e in timeline for t in (tactic(x) for x in e.get("tactics", [])) if t}
    return [f"{uid} {name}" for uid, name in sorted(found, key=lambda t: tactic_order(t[0]))]
